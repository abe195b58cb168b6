"""The six baselines: each update rule against its closed form, then one tiny run per method."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from baselines.alphaedit import alphaedit_delta, null_space_projector
from baselines.emmet import emmet_delta
from baselines.memit import memit_delta
from baselines.prune import restrain
from baselines.rect import rect_mask
from baselines.rome import rome_delta
from editbench.errors import ConfigError
from editbench.io import read_jsonl
from editbench.locate.context import EditContext
from editbench.methods import build_editor
from editbench.runner import run
from tests.test_mose import FixedStats
from tests.test_runner import compose_cfg

D, M = 8, 12


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def spd(m: int, seed: int = 1) -> torch.Tensor:
    X = rand(4 * m, m, seed=seed)
    return X.T @ X / (4 * m)


# --- closed forms ---------------------------------------------------------------------------------
def test_rome_update_maps_the_bare_key_to_v_star_exactly():
    W, u, k_b, v = rand(D, M), rand(M, seed=1), rand(M, seed=2), rand(D, seed=3)
    W_new = W + rome_delta(u, k_b, v, W @ k_b)
    torch.testing.assert_close(W_new @ k_b, v, rtol=0, atol=1e-12)
    assert torch.linalg.matrix_rank(W_new - W) == 1
    x = rand(M, seed=4)
    x = x - (x @ u) / (u @ u) * u  # ⊥ u: untouched (ROME changes W only along u)
    torch.testing.assert_close(W_new @ x, W @ x, rtol=0, atol=1e-12)


def test_memit_delta_solves_its_normal_equations():
    K, R, C0, lam = rand(3, M), rand(3, D, seed=1), spd(M), 7.0
    delta = memit_delta(K, R, C0, lam)
    assert delta.shape == (D, M) and delta.dtype == torch.float64
    # columns = requests in the paper: ΔW (λC0 + K Kᵀ) = R Kᵀ; rows here: K (n, m), R (n, d).
    torch.testing.assert_close(delta @ (lam * C0 + K.T @ K), R.T @ K, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [1, 3])
def test_emmet_meets_the_equality_constraint_exactly_without_eps(n):
    W, K, R, C0 = rand(D, M), rand(n, M, seed=1), rand(n, D, seed=2), spd(M)
    V = K @ W.T + R  # targets V_E as rows
    delta, pinv = emmet_delta(K, R, C0, lam=3.0, mu=0.5, eps=0.0)
    assert not pinv
    torch.testing.assert_close(K @ (W + delta).T, V, rtol=0, atol=1e-10)
    # ... and among all updates that meet it, it moves the preserved outputs least: tr(ΔW C ΔWᵀ).
    C = 3.0 * C0 + 0.5 * torch.eye(M, dtype=torch.float64)
    N = rand(D, M, seed=5)
    N = N - N @ K.T @ torch.linalg.solve(K @ K.T, K)  # N Kᵀ = 0: another feasible direction
    def cost(x):
        return torch.trace(x @ C @ x.T)
    assert cost(delta) < cost(delta + 0.1 * N)


def test_emmet_with_eps_and_singular_d():
    K, R, C0 = rand(3, M, seed=1), rand(3, D, seed=2), spd(M)
    delta, _ = emmet_delta(K, R, C0, lam=2.0, eps=0.1)
    D0 = K @ torch.linalg.solve(2.0 * C0, K.T)  # with ε: ΔW K_E (D0 + εI) = R D0, exactly
    torch.testing.assert_close(delta @ K.T @ (D0 + 0.1 * torch.eye(3, dtype=torch.float64)), R.T @ D0,
                               rtol=0, atol=1e-10)
    K2 = torch.cat([K[:1], K[:1]])  # the same key twice, ε = 0: D is singular
    delta2, pinv = emmet_delta(K2, torch.cat([R[:1], R[:1]]), C0, lam=2.0, eps=0.0)
    assert pinv and torch.isfinite(delta2).all()
    torch.testing.assert_close(K2[:1] @ delta2.T, R[:1], rtol=0, atol=1e-8)


def test_emmet_lambda_cancels_for_single_edits_but_not_in_batches():
    # With μ = 0, C = λC0 and ΔW = R (kᵀC⁻¹k)⁻¹ kᵀC⁻¹: λ cancels for one request (what the λ sweep in
    # experiments/lambda found: identical runs at λ = 10⁴ and 10⁵). In a batch, ε·I is added to
    # D ∝ 1/λ, so λ sets ε's relative weight.
    K, R, C0 = rand(3, M, seed=1), rand(3, D, seed=2), spd(M)
    one = [emmet_delta(K[:1], R[:1], C0, lam=lam)[0] for lam in (1e4, 1e5)]
    torch.testing.assert_close(one[0], one[1], rtol=1e-9, atol=0)
    batch = [emmet_delta(K, R, C0, lam=lam, eps=0.1)[0] for lam in (1.0, 10.0)]
    assert (batch[0] - batch[1]).abs().max() > 1e-3 * batch[0].abs().max()


def test_rect_keeps_exactly_the_top_fraction_by_relative_change():
    W, delta = rand(D, M), rand(D, M, seed=1)
    mask = rect_mask(delta, W, keep_ratio=0.2)
    assert int(mask.sum()) == round(0.2 * D * M)
    rel = delta.abs() / (W.abs() + 1e-8)
    assert rel[mask].min() > rel[~mask].max()


def _with_spectrum(s: torch.Tensor, d=D, m=M, seed=7) -> torch.Tensor:
    U, _ = torch.linalg.qr(rand(d, d, seed=seed))
    V, _ = torch.linalg.qr(rand(m, m, seed=seed + 1))
    return U[:, : len(s)] @ torch.diag(s) @ V[:, : len(s)].T


def test_prune_maps_large_singular_values_by_the_log_rule():
    s = torch.tensor([40.0, 9.0, 5.0, 2.0, 0.5, 0.1], dtype=torch.float64)
    sigma_max, alpha = 4.0, 1.2
    restrained, n, sigma1 = restrain(_with_spectrum(s), sigma_max, alpha)
    expected = torch.where(s >= sigma_max, torch.log(s) / math.log(alpha) - math.log(sigma_max) / math.log(alpha)
                           + sigma_max, s)
    got = torch.linalg.svdvals(restrained)[: len(s)]
    torch.testing.assert_close(got, expected.sort(descending=True).values, rtol=1e-12, atol=1e-12)
    assert n == 3 and sigma1 == pytest.approx(40.0, rel=1e-12)  # ΔW's largest σ, before the mapping
    small = _with_spectrum(torch.tensor([3.0, 1.0], dtype=torch.float64))
    assert torch.equal(restrain(small, sigma_max, alpha)[0], small)  # below σ_max: untouched


def test_alphaedit_projector_and_null_space_update():
    Q, _ = torch.linalg.qr(rand(M, M, seed=3))
    eig = torch.tensor([5.0, 2.0, 1.0, 0.5, 0.3, 0.1] + [1e-3] * 6, dtype=torch.float64)
    C0 = Q @ torch.diag(eig) @ Q.T
    P = null_space_projector(C0, threshold=2e-2)
    torch.testing.assert_close(P @ P, P, rtol=0, atol=1e-12)
    torch.testing.assert_close(P, P.T, rtol=0, atol=1e-12)
    assert round(float(torch.trace(P))) == 6
    K, R = rand(2, M, seed=4), rand(2, D, seed=5)
    Cp = rand(4, M, seed=6).T @ rand(4, M, seed=6)
    kept = Q[:, :6] @ rand(6, 5, seed=8)  # keys in the span of the preserved (large) directions
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        delta = alphaedit_delta(K, R, P, Cp, alpha=10.0, dtype=dtype)
        assert delta.dtype == dtype and delta.shape == (D, M)
        assert float((delta @ kept.to(dtype)).abs().max()) < tol * float(delta.abs().max()) * 10
        assert float(delta.abs().max()) > 1e-3  # it does move the edited keys


# --- editors on the tiny model (synthetic targets) ----------------------------------------------------
@pytest.fixture()
def tiny_ctx(tiny):
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], FixedStats(tiny.spec.ffn_size))
    yield ctx
    for layer, W0 in ctx.originals.items():
        tiny.spec.set_weight(tiny.model, layer, W0)


def _cfg(name, **kw):
    return OmegaConf.create({"name": name, "layers": [1, 2], "mom2_update_weight": 10.0, "on_nonfinite": "skip",
                             "value": {"steps": 2}, **kw})


@pytest.mark.parametrize("mode", ["post_hoc", "online"])
def test_prune_restrains_the_accumulated_update_from_w0(tiny_ctx, mode):
    editor = build_editor("prune", tiny_ctx, _cfg("prune", mode=mode, layers=[1]))
    W0 = editor.weight(1)
    sigma0 = float(torch.linalg.svdvals(W0)[0])
    steps = [_with_spectrum(torch.tensor([6 * sigma0], dtype=torch.float64), *W0.shape, seed=s) for s in (0, 2)]
    for step in steps:  # two additive edits, then PRUNE's hook
        editor.write_weight(1, editor.weight(1) + step)
        record = editor.after_step([])
    record = editor.finalize() if mode == "post_hoc" else record  # the record of the step that restrained
    assert record["prune"]["1"]["restrained"] >= 1 and record["prune"]["1"]["sigma1_delta"] >= sigma0
    if mode == "post_hoc":  # W = W0 + F(ΔW) with ΔW the whole accumulated change
        expected = W0 + restrain(steps[0] + steps[1], sigma0, 1.2)[0]
    else:  # restrained after each step, the next step continues from there
        expected = W0 + restrain(restrain(steps[0], sigma0, 1.2)[0] + steps[1], sigma0, 1.2)[0]
    torch.testing.assert_close(editor.weight(1), expected, rtol=0, atol=1e-5)
    assert not torch.allclose(expected, W0 + steps[0] + steps[1], atol=1e-3)  # the restraint did act


class KeyedStats(FixedStats):
    def key(self, layer: int) -> str:
        return f"fixed-{layer}"


def test_alphaedit_projector_cache(tiny, isolated_cache):
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], KeyedStats(tiny.spec.ffn_size))
    cfg = _cfg("alphaedit", nullspace_threshold=0.5)
    first = build_editor("alphaedit", ctx, cfg)
    assert first.stat_layers() == [1, 2]
    P = first.projector(1)
    assert len(list((isolated_cache / "projectors").glob("P-layer1-*.safetensors"))) == 1
    second = build_editor("alphaedit", ctx, cfg)
    assert second.stat_layers() == [2]  # C0 is no longer needed where P is cached
    assert torch.equal(second.projector(1), P)
    other_tau = build_editor("alphaedit", ctx, _cfg("alphaedit", nullspace_threshold=0.1))
    assert other_tau.stat_layers() == [1, 2]  # τ is part of the key


def test_alphaedit_state_roundtrip_and_rome_layer_check(tiny_ctx):
    editor = build_editor("alphaedit", tiny_ctx, _cfg("alphaedit"))
    editor.cache_c[1] += torch.eye(tiny_ctx.spec.ffn_size)
    other = build_editor("alphaedit", tiny_ctx, _cfg("alphaedit"))
    other.load_state_dict(editor.state_dict())
    assert torch.equal(other.cache_c[1], editor.cache_c[1]) and not other.cache_c[2].any()
    with pytest.raises(ConfigError, match="one layer"):
        build_editor("rome", tiny_ctx, _cfg("rome"))


# --- end to end through the runner ---------------------------------------------------------------------
@pytest.mark.parametrize(("method", "extra"), [
    ("rome", ["method.mom2_adjustment=true"]),  # u = C0⁻¹k̄: the path that reads statistics
    ("memit", []), ("emmet", []), ("rect", []), ("prune", []), ("alphaedit", [])])
def test_runs_end_to_end_on_the_tiny_model(method, extra, tmp_path, data_dir, isolated_cache):
    cfg = compose_cfg(f"method={method}", "model=tiny-llama", "num_edits=3", "stats.n_tokens=2000",
                      "logger.wandb.mode=disabled", f"data_dir={data_dir}", "method.value.steps=3", *extra)
    run(cfg, tmp_path)
    steps = [s for s in read_jsonl(tmp_path / "steps.jsonl") if s["step"] != "finalize"]
    layers = sorted(int(x) for x in cfg.method.layers)
    assert [s["step"] for s in steps] == [1, 2, 3]
    for s in steps:
        assert s["layers"] == layers and sorted(int(x) for x in s["matrices"]) == layers
        assert all(s["matrices"][str(x)]["delta_fro"] > 0 for x in layers)
    assert len(read_jsonl(tmp_path / "edits.jsonl")) == 3
    finalize = [s for s in read_jsonl(tmp_path / "steps.jsonl") if s["step"] == "finalize"]
    assert len(finalize) == (method == "prune" and not extra)  # post-hoc PRUNE restrains once, at the end
    if method == "alphaedit":  # P cached under the C0 key + τ
        assert len(list((isolated_cache / "projectors").glob("P-layer*.safetensors"))) == len(layers)
