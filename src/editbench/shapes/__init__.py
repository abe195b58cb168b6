"""The paper models' exact shapes (their published config.json numbers) with seeded random weights.

``model=llama3-8b model.source=random`` builds LLaMA3-8B's architecture from ``shapes/llama3-8b.json``
without its weights: the widths (d, d_ff, vocabulary), the dtype and the device are the real
model's, so time and memory per edit are too; its answers are noise. ``model.n_layers=9`` keeps
the widths and drops the upper blocks (a depth-reduced variant that fits a 24 GiB CPU in bf16);
method layers above it must be remapped (experiments/paper-scale/README.md says how).
The tokenizer is the in-memory tiny one unless ``model.tokenizer`` names a directory: any
tokenizer whose ids lie inside the vocabulary will do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import torch

from editbench.errors import ConfigError

SHAPE_DIR = "editbench.shapes"


def shape_names() -> list[str]:
    """The shipped shapes (file stems of shapes/*.json)."""
    return sorted(p.name.removesuffix(".json") for p in resources.files(SHAPE_DIR).iterdir()
                  if p.name.endswith(".json"))


def shape_config(name: str, n_layers: int | None = None) -> dict[str, Any]:
    """The published config.json of a paper model, optionally with fewer decoder blocks."""
    if name not in shape_names():
        raise ConfigError(f"no shipped shape {name!r} for model.source=random; use one of {', '.join(shape_names())} "
                          "or model.path=<a dir with config.json and a tokenizer>")
    config = json.loads(resources.files(SHAPE_DIR).joinpath(f"{name}.json").read_text())
    config.pop("_source")
    full = int(config["num_hidden_layers"])
    if n_layers is not None:
        if not 1 <= int(n_layers) <= full:
            raise ConfigError(f"model.n_layers={n_layers} for shape {name!r}; use 1..{full} (a depth-reduced variant "
                              "keeps the widths and drops the upper blocks)")
        config["num_hidden_layers"] = int(n_layers)
        if "max_window_layers" in config:
            config["max_window_layers"] = int(n_layers)
    return config


def param_count(config: Mapping[str, Any]) -> int:
    """Parameters of a LLaMA/Qwen2-layout model from its config (for memory estimates before loading)."""
    d, m, v, n = (int(config[k]) for k in ("hidden_size", "intermediate_size", "vocab_size", "num_hidden_layers"))
    heads, kv = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    head_dim = d // heads
    attn = d * d * 2 + 2 * d * kv * head_dim
    if config.get("model_type") == "qwen2":  # q, k, v projections carry a bias
        attn += d + 2 * kv * head_dim
    block = attn + 3 * d * m + 2 * d
    embed = v * d * (1 if config.get("tie_word_embeddings") else 2)
    return n * block + embed + d


def load_shape(name: str, cfg: Mapping, dtype: torch.dtype, device: str) -> tuple[Any, Any, str]:
    """(model, tokenizer, description) of shape `name` with seeded random weights, built in `dtype`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from editbench.models.tiny import tiny_tokenizer

    tok_dir = cfg.get("tokenizer")
    tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True) if tok_dir else tiny_tokenizer(add_bos=True)
    config_dict = shape_config(name, cfg.get("n_layers"))
    if len(tok) > int(config_dict["vocab_size"]):
        raise ConfigError(f"model.tokenizer={tok_dir} has {len(tok)} ids, more than {name}'s vocabulary "
                          f"{config_dict['vocab_size']}; use a smaller tokenizer (the tiny one: model.tokenizer=null)")
    config_dict |= {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                    "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id}
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    seed = int((cfg.get("tiny") or {}).get("seed", 0))
    # Built directly in the target dtype (a float32 LLaMA3-8B would need 32 GB before the cast), and
    # on the target device, so a GPU run never holds the weights on the host.
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model, tok, f"random-shape:{name}:layers={config.num_hidden_layers}:seed={seed}"
