"""MOSE: the Procrustes step, spectrum preservation over long sequences, and a real edit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from omegaconf import OmegaConf

from editbench.editors.mose import orthogonality_error, procrustes
from editbench.errors import NumericalError
from editbench.locate.context import EditContext
from editbench.methods import build_editor
from editbench.numerics import matrix_stats

MOSE_CFG = {
    "name": "mose", "mom2_update_weight": 10.0, "layer_selection": "select_neighbors", "fixed_layers": [1],
    "candidate_layers": [0, 1, 2, 3], "selection_steps": 2, "on_nonfinite": "skip",
    "value": {"steps": 5, "lr": 0.5, "weight_decay": 1e-3, "clamp_norm_factor": 4.0, "kl_factor": 0.0625,
              "early_stop": 0.05},
}


def test_procrustes_equals_scipy_and_beats_random_rotations():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((6, 20)), rng.standard_normal((6, 20))
    R = procrustes(torch.tensor(B @ A.T)).numpy()
    # scipy solves min ‖A' Ω − B'‖ (right multiplication); ours is min ‖R A − B‖ = min ‖Aᵀ Rᵀ − Bᵀ‖.
    omega, _ = scipy.linalg.orthogonal_procrustes(A.T, B.T)
    np.testing.assert_allclose(R, omega.T, atol=1e-12)
    assert orthogonality_error(torch.tensor(R)) < 1e-12
    best = np.linalg.norm(R @ A - B)
    for Q in scipy.stats.ortho_group.rvs(6, size=100, random_state=1):
        assert best < np.linalg.norm(Q @ A - B)


class FixedStats:
    """C0 for tests: a fixed random SPD matrix per layer (the real one is tested in test_locate)."""

    def __init__(self, m: int) -> None:
        g = torch.Generator().manual_seed(0)
        X = torch.randn(4 * m, m, generator=g, dtype=torch.float64)
        self.c0 = X.T @ X / (4 * m)

    def __call__(self, layer: int) -> torch.Tensor:
        return self.c0

    def get(self, layers):
        return {layer: self.c0 for layer in layers}


def test_500_rotations_preserve_norms_condition_number_and_orthogonality(tiny):
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], FixedStats(tiny.spec.ffn_size))
    editor = build_editor("mose", ctx, OmegaConf.create(MOSE_CFG))
    layer, d, m = 2, tiny.spec.hidden_size, tiny.spec.ffn_size
    before = matrix_stats(tiny.spec.get_weight(tiny.model, layer))
    g = torch.Generator().manual_seed(0)
    try:
        for _ in range(500):  # random targets: keys and desired outputs drawn afresh every step
            keys = torch.randn(1, m, generator=g, dtype=torch.float64)
            targets = 3.0 * torch.randn(1, d, generator=g, dtype=torch.float64)
            err = editor.rotate(layer, keys, targets)
        after = matrix_stats(tiny.spec.get_weight(tiny.model, layer), editor.original(layer))
        assert after["delta_fro"] > 0.1 * before["fro"]  # the matrix really moved
        for key in ("fro", "spectral", "cond"):
            assert after[key] == pytest.approx(before[key], rel=1e-6)
        assert err <= 1e-10
        assert after["sv_drift"] < 1e-6
    finally:
        tiny.spec.set_weight(tiny.model, layer, editor.original(layer))


def test_rotation_moves_key_output_towards_target(tiny):
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], FixedStats(tiny.spec.ffn_size))
    cfg = OmegaConf.create({**MOSE_CFG, "mom2_update_weight": 1e-3})
    editor = build_editor("mose", ctx, cfg)
    layer = 1
    W = editor.weight(layer)
    g = torch.Generator().manual_seed(3)
    k = torch.randn(1, tiny.spec.ffn_size, generator=g, dtype=torch.float64)
    out = k @ W.T
    target = torch.flip(out, dims=[1])  # same norm, other direction: reachable by a rotation
    try:
        editor.rotate(layer, k, target)
        new_out = k @ editor.weight(layer).T
        assert torch.linalg.norm(new_out - target) < 0.05 * torch.linalg.norm(out - target)
    finally:
        tiny.spec.set_weight(tiny.model, layer, editor.original(layer))


def test_cayley_blocks_are_orthogonal():
    from editbench.editors.mose_oft import cayley

    R = torch.randn(4, 8, 8, dtype=torch.float64)
    Q = cayley(R)
    eye = torch.eye(8, dtype=torch.float64)
    assert torch.allclose(Q.transpose(-1, -2) @ Q, eye.expand_as(Q), atol=1e-12)
    assert torch.allclose(cayley(torch.zeros(2, 3, 3)), torch.eye(3).expand(2, 3, 3))


def test_mose_oft_run_keeps_spectrum(tmp_path, data_dir, isolated_cache):
    from editbench.io import read_jsonl
    from tests.test_runner import tiny_run

    tiny_run(tmp_path, data_dir, "method=mose_oft", "num_edits=2", "method.coft_eps=1.0")
    steps = read_jsonl(tmp_path / "steps.jsonl")
    assert steps[-1]["layers"] == [1, 2]
    for layer in ("1", "2"):
        m = steps[-1]["matrices"][layer]
        assert m["delta_fro"] > 0 and m["sv_drift"] < 1e-6
        assert steps[-1]["orthogonality"][layer] < 1e-10


# --- issue 26: reflections, the SO(d) variant, det R in steps.jsonl, COFT per block, the guard ---------


def reflection_case(d: int, seed: int) -> torch.Tensor:
    """M = λG + v uᵀ for one edit (G SPD) with det M < 0: v = −s·u, s·uᵀ(λG)⁻¹u > 1."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(3 * d, d, generator=g, dtype=torch.float64)
    G, u = X.T @ X / (3 * d), torch.randn(d, generator=g, dtype=torch.float64)
    lam = 0.1
    s = 3.0 / float(u @ torch.linalg.solve(lam * G, u))
    M = lam * G - s * torch.outer(u, u)
    assert torch.linalg.det(M) < 0
    return M


def test_procrustes_can_be_a_reflection_and_special_orthogonal_is_the_best_rotation():
    M = reflection_case(6, 0)
    R_o, R_so = procrustes(M), procrustes(M, special=True)
    assert torch.linalg.det(R_o) == pytest.approx(-1.0, abs=1e-10)  # the paper's O(d) solution: a reflection
    assert torch.linalg.det(R_so) == pytest.approx(1.0, abs=1e-10)
    assert orthogonality_error(R_so) < 1e-12
    # the closed form: tr(R_soᵀ M) = σ_1 + … + σ_{d−1} − σ_d (Kabsch); O(d) gains the 2σ_d it gives up
    sv = torch.linalg.svdvals(M)
    assert float(torch.trace(R_so.T @ M)) == pytest.approx(float(sv[:-1].sum() - sv[-1]), rel=1e-10)
    assert float(torch.trace(R_o.T @ M)) == pytest.approx(float(sv.sum()), rel=1e-10)
    # no proper rotation does better: random ones, and gradient ascent on SO(d) from 20 random starts
    best = float(torch.trace(R_so.T @ M))
    rots = [torch.tensor(q) for q in scipy.stats.special_ortho_group.rvs(6, size=200, random_state=2)]
    assert all(float(torch.trace(Q.T @ M)) < best for Q in rots)
    for Q0 in rots[:20]:
        A = torch.zeros(6, 6, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([A], lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            Q = torch.linalg.matrix_exp(A - A.T) @ Q0  # stays in SO(d)
            (-torch.trace(Q.T @ M)).backward()
            opt.step()
        assert float(torch.trace(Q.detach().T @ M)) <= best + 1e-8


def test_special_orthogonal_matches_scipy_kabsch_in_3d():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(4)
    A = rng.standard_normal((3, 10))
    B = np.diag([1.0, 1.0, -1.0]) @ A + 0.05 * rng.standard_normal((3, 10))  # a mirror image: det(B Aᵀ) < 0
    assert np.linalg.det(B @ A.T) < 0
    R_so = procrustes(torch.tensor(B @ A.T), special=True).numpy()
    kabsch, _ = Rotation.align_vectors(B.T, A.T)  # min Σ‖b_i − R a_i‖² over proper rotations
    np.testing.assert_allclose(R_so, kabsch.as_matrix(), atol=1e-8)


@pytest.mark.parametrize(("rotation", "det"), [("orthogonal", -1.0), ("special_orthogonal", 1.0)])
def test_rotate_logs_det_and_the_variant_avoids_the_reflection(tiny, rotation, det):
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], FixedStats(tiny.spec.ffn_size))
    editor = build_editor("mose", ctx, OmegaConf.create({**MOSE_CFG, "mom2_update_weight": 1e-4,
                                                           "rotation": rotation}))
    layer = 1
    k = torch.randn(1, tiny.spec.ffn_size, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = k @ editor.weight(layer).T
    try:
        editor.rotate(layer, k, -50.0 * out)  # det M = det(λG)(1 − 50 uᵀ(λG)⁻¹u) < 0 at this λ
        M = editor.lam * editor._gram0[layer] + (-50.0 * out).T @ out
        assert torch.linalg.slogdet(M).sign < 0  # det itself underflows at d = 64 and λ = 1e-4
        step_det, cumulative_det = editor.last_det[layer]
        assert step_det == pytest.approx(det, abs=1e-8) and cumulative_det == pytest.approx(det, abs=1e-8)
        after = matrix_stats(tiny.spec.get_weight(tiny.model, layer), editor.original(layer))
        assert after["sv_drift"] < 1e-6  # a reflection preserves the spectrum too
    finally:
        tiny.spec.set_weight(tiny.model, layer, editor.original(layer))


def test_det_of_every_rotation_is_in_steps_jsonl(tmp_path, data_dir, isolated_cache):
    from editbench.io import read_jsonl
    from tests.test_runner import tiny_run

    tiny_run(tmp_path, data_dir, "method=mose", "num_edits=2", "method.rotation=special_orthogonal")
    steps = read_jsonl(tmp_path / "steps.jsonl")
    for s in steps:
        assert set(s["det_step"]) == set(s["det_cumulative"]) == {str(x) for x in s["layers"]}
        for value in (*s["det_step"].values(), *s["det_cumulative"].values()):
            assert value == pytest.approx(1.0, abs=1e-8)  # SO(d): never a reflection


def test_layer_scores_with_newton_reach_the_early_stop(tiny):
    from editbench.data.records import EditRequest

    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], FixedStats(tiny.spec.ffn_size))
    reqs = [EditRequest(case_id=str(i), prompt="{} is located in", subject=s, target_new=t, target_true="x")
            for i, (s, t) in enumerate([("Paris", " Rome"), ("Berlin", " Oslo")])]
    parts = {}
    for opt, steps in (("newton", 25), ("adam", 2)):
        cfg = OmegaConf.create({**MOSE_CFG, "selection_optimizer": opt, "selection_steps": steps})
        parts[opt] = build_editor("mose", ctx, cfg).layer_score_parts(reqs)
        assert parts[opt]["score"].shape == (2, 4)
        torch.testing.assert_close(parts[opt]["score"], parts[opt]["delta_norm"] / parts[opt]["denominator"])
    # the random tiny model cannot be edited (loss floor ≈ 6): newton's δ never reaches the early stop,
    # so every candidate is scored with the clamp bound 4·‖h0‖, not with its best δ (which is 0 here)
    assert bool((parts["newton"]["loss_final"] > MOSE_CFG["value"]["early_stop"]).all())
    assert bool((parts["newton"]["delta_norm"] > 0).all())


def test_coft_projection_per_block_and_stack_against_hand_computed_values():
    from editbench.editors.mose_oft import coft_project

    g = torch.Generator().manual_seed(0)
    blocks = torch.randn(4, 3, 3, generator=g, dtype=torch.float64)
    blocks = blocks / torch.linalg.matrix_norm(blocks)[:, None, None]  # unit Frobenius norm per block
    scale = torch.tensor([3.0, 0.5, 2.0, 0.0], dtype=torch.float64)
    R = blocks * scale[:, None, None]
    radius = 1.0
    per_block = R.clone()
    coft_project(per_block, radius, "per_block")
    # by hand: blocks 0 and 2 scaled onto the ball (norm 1), block 1 inside it and block 3 = 0 untouched
    torch.testing.assert_close(per_block, torch.stack([blocks[0], 0.5 * blocks[1], blocks[2], 0 * blocks[3]]))
    assert float(torch.linalg.matrix_norm(per_block.reshape(-1, 3))) == pytest.approx((1 + 0.25 + 1) ** 0.5)
    stack = R.clone()
    coft_project(stack, radius, "stack")
    total = (9 + 0.25 + 4) ** 0.5
    torch.testing.assert_close(stack, R / total)
    inside = 0.1 * R
    for mode in ("per_block", "stack"):
        kept = inside.clone()
        coft_project(kept, 10.0, mode)
        assert torch.equal(kept, inside)
    from editbench.errors import ConfigError

    with pytest.raises(ConfigError, match="coft_projection.*per_block, stack"):
        coft_project(R.clone(), radius, "blocks")


@pytest.mark.parametrize("mode", ["per_block", "stack"])
def test_mose_oft_keeps_each_block_in_the_released_ball(tiny, mode):
    from editbench.data.records import EditRequest

    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]])
    cfg = OmegaConf.create({"name": "mose_oft", "layers": [1, 2], "n_blocks": 4, "coft_eps": 1.0e-4, "lr": 0.05,
                            "weight_decay": 0.0, "steps": 5, "on_nonfinite": "skip", "coft_projection": mode})
    editor = build_editor("mose_oft", ctx, cfg)
    b = tiny.spec.ffn_size // 4
    assert editor.radius == pytest.approx(1.0e-4 * b**2 / 2)  # ε·(m/r)²/√r, r = 4
    before = {layer: tiny.spec.get_weight(tiny.model, layer).clone() for layer in (1, 2)}
    req = EditRequest(case_id="0", prompt="{} is located in", subject="Paris", target_new=" Rome", target_true="x")
    try:
        editor.edit([req])
        for layer in (1, 2):
            norms = torch.linalg.matrix_norm(editor.R[layer], dim=(-2, -1))
            total = float(torch.linalg.matrix_norm(editor.R[layer].reshape(-1, b)))
            if mode == "per_block":  # every block on its own ball: the stack reaches √r·radius
                assert torch.allclose(norms, torch.full_like(norms, editor.radius), rtol=1e-4)
                assert total == pytest.approx(2 * editor.radius, rel=1e-4)
            else:
                assert total == pytest.approx(editor.radius, rel=1e-4)
    finally:
        for layer in (1, 2):
            tiny.spec.set_weight(tiny.model, layer, before[layer])


def test_blockwise_rotation_equals_the_block_diagonal_product():
    """mose_oft writes W0·blockdiag(Q)ᵀ block by block (no m×m matrix at paper widths): same numbers."""
    from editbench.editors.mose_oft import block_orthogonality_error, cayley, rotate_blocks

    gen = torch.Generator().manual_seed(3)
    W, R = torch.randn(6, 20, generator=gen, dtype=torch.float64), torch.randn(4, 5, 5, generator=gen)
    Q = cayley(R.double())
    full = torch.block_diag(*Q)
    assert torch.allclose(rotate_blocks(W, Q), W @ full.T, atol=1e-12)
    assert block_orthogonality_error(Q) == pytest.approx(float(torch.linalg.matrix_norm(full.T @ full - torch.eye(20,
                                                        dtype=torch.float64))), abs=1e-12)
    assert block_orthogonality_error(Q + 0.1) > 0.1


def test_cayley_blocks_are_orthogonal_with_several_threads():
    """SmolLM2's blocks are 384 wide: torch's batched CPU LU breaks there on more than one thread
    (pytorch/pytorch#142815: an error or wrong pivots); the Cayley map solves block by block."""
    from editbench.editors.mose_oft import cayley

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        R = 0.01 * torch.randn(4, 384, 384, generator=torch.Generator().manual_seed(0))
        Q = cayley(R)
    finally:
        torch.set_num_threads(threads)
    eye = torch.eye(384)
    for q, r in zip(Q, R.double(), strict=True):
        assert float(torch.linalg.matrix_norm(q.T @ q - eye)) < 1e-4
        s = 0.5 * (r - r.T)
        reference = (torch.eye(384, dtype=torch.float64) - s) @ torch.linalg.inv(torch.eye(384, dtype=torch.float64) + s)
        assert torch.allclose(q.double(), reference, atol=1e-5)


def test_mose_oft_update_ratio_is_the_step_not_the_reset_to_w0(tiny):
    """Each step resets the layers to W0 to train; the guard's ratio is ‖W_after − W_before‖ / ‖W_before‖."""
    from editbench.data.records import EditRequest

    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]])
    cfg = OmegaConf.create({"name": "mose_oft", "layers": [1], "n_blocks": 4, "coft_eps": 1.0e-2, "lr": 0.05,
                            "weight_decay": 0.0, "steps": 3, "on_nonfinite": "skip"})
    editor = build_editor("mose_oft", ctx, cfg)
    W0 = tiny.spec.get_weight(tiny.model, 1).clone()
    reqs = [EditRequest(case_id=str(i), prompt="{} is located in", subject=s, target_new=" Rome", target_true="x")
            for i, s in enumerate(["Paris", "Berlin"])]
    try:
        editor.edit(reqs[:1])
        editor.take_update_ratios()
        before = tiny.spec.get_weight(tiny.model, 1).double()
        editor.edit(reqs[1:])
        after = tiny.spec.get_weight(tiny.model, 1).double()
        step = float(torch.linalg.matrix_norm(after - before) / torch.linalg.matrix_norm(before))
        cumulative = float(torch.linalg.matrix_norm(before - W0.double()) / torch.linalg.matrix_norm(before))
        assert 0 < step and step != pytest.approx(cumulative, rel=1e-2)  # the old bookkeeping took the larger
        assert editor.take_update_ratios()[1] == pytest.approx(step, rel=1e-6)
    finally:
        tiny.spec.set_weight(tiny.model, 1, W0)


def test_mose_oft_non_finite_update_is_refused_by_the_guard(tiny):
    from editbench.data.records import EditRequest

    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]])
    cfg = OmegaConf.create({"name": "mose_oft", "layers": [1, 2], "n_blocks": 4, "coft_eps": 1.0, "lr": float("inf"),
                            "weight_decay": 0.0, "steps": 3, "on_nonfinite": "skip"})
    editor = build_editor("mose_oft", ctx, cfg)
    before = {layer: tiny.spec.get_weight(tiny.model, layer).clone() for layer in (1, 2)}
    req = EditRequest(case_id="0", prompt="{} is located in", subject="Paris", target_new=" Rome",
                      target_true="x")
    diag = editor.edit([req])
    assert editor.take_rejected() == [1, 2]
    assert diag["layers"] == [1, 2]
    for layer in (1, 2):
        assert torch.equal(tiny.spec.get_weight(tiny.model, layer), before[layer])
        assert torch.equal(editor.R[layer], torch.zeros_like(editor.R[layer]))
    strict = build_editor("mose_oft", ctx, OmegaConf.create({**OmegaConf.to_container(cfg), "on_nonfinite": "abort"}))
    with pytest.raises(NumericalError, match="non-finite"):
        strict.edit([req])
    for layer in (1, 2):
        tiny.spec.set_weight(tiny.model, layer, before[layer])


def test_reports_label_each_variant_by_its_settings():
    from editbench.results.runs import variant_label

    paper = {"config:method.rotation": "orthogonal", "config:method.selection_optimizer": "newton"}
    assert variant_label("MOSE (paper)", paper) == "MOSE (paper)"
    so = {**paper, "config:method.rotation": "special_orthogonal", "config:method.selection_optimizer": "adam"}
    assert variant_label("MOSE (paper)", so) == "MOSE (paper, SO(d), Adam layer scores)"
    assert variant_label("mose_oft", {"config:method.coft_projection": "stack"}) == "mose_oft (stack COFT)"


# --- issue 20: where the edit goes (edit_geometry in the step record) ----------------------------------


def test_edit_geometry_is_consistent_on_a_tiny_model(tiny):
    from editbench.data.records import EditRequest
    from editbench.editors.mose import EDIT_GEOMETRY_FIELDS

    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], FixedStats(tiny.spec.ffn_size))
    cfg = OmegaConf.create({**MOSE_CFG, "layer_selection": "fixed", "fixed_layers": [1, 2],
                            "mom2_update_weight": 0.1})
    editor = build_editor("mose", ctx, cfg)
    reqs = [EditRequest(case_id=str(i), prompt="{} is located in", subject=s, target_new=t, target_true="x")
            for i, (s, t) in enumerate([("Paris", " Rome"), ("Berlin", " Oslo")])]
    before = {layer: tiny.spec.get_weight(tiny.model, layer).clone() for layer in (1, 2)}
    try:
        diag = editor.edit(reqs)
    finally:
        for layer in (1, 2):
            tiny.spec.set_weight(tiny.model, layer, before[layer])
    assert set(diag["edit_geometry"]) == {"1", "2"}
    for g in diag["edit_geometry"].values():
        assert g["case_ids"] == ["0", "1"] and set(EDIT_GEOMETRY_FIELDS) <= set(g)
        x = {k: torch.tensor(g[k], dtype=torch.float64) for k in EDIT_GEOMETRY_FIELDS}
        torch.testing.assert_close(x["change_along_output"] ** 2 + x["change_across_output"] ** 2,
                                   x["change_norm"] ** 2, rtol=1e-9, atol=1e-9)
        assert bool((x["realised_norm"] <= 2 * x["output_norm"] + 1e-6).all())  # ‖Rw − w‖ ≤ 2‖w‖
        assert bool((x["realised_along_change"].abs() <= x["realised_norm"] + 1e-9).all())
        assert bool((x["miss_after"] >= x["norm_gap"].abs() - 1e-4).all())  # no rotation closes the norm gap
        assert bool((x["realised_norm"] > 0).all())  # the step moved W k
        assert bool((x["realised_along_change"] > 0).all())  # ... towards what was asked
    group = diag["v"][0]
    assert group["case_ids"] == ["0", "1"] and len(group["z_residual"]) == 3  # before 1, before 2, after 2


def test_edit_geometry_by_hand():
    from editbench.editors.mose import edit_geometry

    w = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    v = torch.tensor([[5.0, 4.0]], dtype=torch.float64)  # c = (2, 4): along 2, across 4; ‖v‖ − ‖w‖ = √41 − 3
    w_after = torch.tensor([[0.0, 3.0]], dtype=torch.float64)  # a quarter turn
    g = edit_geometry(w, v, w_after)
    assert g["output_norm"] == [3.0] and g["change_along_output"] == [2.0] and g["change_across_output"] == [4.0]
    assert g["change_norm"][0] == pytest.approx(20**0.5)
    assert g["norm_gap"][0] == pytest.approx(41**0.5 - 3)
    assert g["realised_norm"][0] == pytest.approx(18**0.5)
    assert g["realised_along_change"][0] == pytest.approx((-3 * 2 + 3 * 4) / 20**0.5)
    assert g["miss_after"][0] == pytest.approx(26**0.5)


# --- issue 20: method.targets (spread: MEMIT's spread of one z*, the default | own: each layer's δ_l of eq. 22) ---

def own_requests() -> list:
    from editbench.data.records import EditRequest

    return [EditRequest(case_id=str(i), prompt="{} is located in", subject=s, target_new=t, target_true="x")
            for i, (s, t) in enumerate([("Paris", " Rome"), ("Berlin", " Oslo")])]


def edit_and_restore(tiny, cfg: dict, layers=(1, 2)) -> tuple:
    """One MOSE edit of own_requests() on the tiny model: (diag, weights after, editor), the weights restored."""
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"], ["A b. {}"]], FixedStats(tiny.spec.ffn_size))
    editor = build_editor("mose", ctx, OmegaConf.create(cfg))
    reqs = own_requests()
    before = {layer: tiny.spec.get_weight(tiny.model, layer).clone() for layer in layers}
    try:
        diag = editor.edit(reqs)
        after = {layer: tiny.spec.get_weight(tiny.model, layer).clone() for layer in layers}
    finally:
        for layer in layers:
            tiny.spec.set_weight(tiny.model, layer, before[layer])
    return diag, after, editor


# Adam's few steps return a δ ≠ 0 on the random tiny model (Newton's best δ there is 0: its loss floor ≈ 6).
OWN_CFG = {**MOSE_CFG, "layer_selection": "fixed", "fixed_layers": [1, 2], "mom2_update_weight": 0.1,
           "selection_optimizer": "adam", "selection_steps": 3}


def test_targets_spread_is_todays_update_and_own_is_another(tiny):
    absent, w_absent, _ = edit_and_restore(tiny, OWN_CFG)
    spread, w_spread, _ = edit_and_restore(tiny, {**OWN_CFG, "targets": "spread"})
    _, w_own, _ = edit_and_restore(tiny, {**OWN_CFG, "targets": "own"})
    for layer in (1, 2):
        assert torch.equal(w_absent[layer], w_spread[layer])  # bit for bit
        assert not torch.allclose(w_own[layer], w_spread[layer], atol=1e-4)
    assert absent == spread and "z_residual" in spread["v"][0]


def test_own_targets_rotate_each_layer_towards_its_own_delta_bottom_up(tiny):
    from editbench.locate.layer_change import one_layer_changes
    from editbench.locate.reads import layer_keys

    diag, after, editor = edit_and_restore(tiny, {**OWN_CFG, "targets": "own"})
    ctx, params, reqs = editor.ctx, editor.selection_params(), own_requests()
    # layer 1 (the bottom): its δ is the layer score's own δ_1 on the unedited model (the selection machinery)
    scores = build_editor("mose", ctx, OmegaConf.create({**OWN_CFG, "layer_selection": "select",
                                                         "candidate_layers": [1]})).layer_score_parts(reqs)
    torch.testing.assert_close(torch.tensor(diag["edit_geometry"]["1"]["change_norm"], dtype=torch.float32),
                               scores["delta_norm"][:, 0], rtol=1e-4, atol=1e-5)
    # eq. 17-20 by hand, bottom-up: δ_2 on the model after layer 1's rotation (a stale δ_2 gives another layer 2)
    W0 = {layer: tiny.spec.get_weight(tiny.model, layer).clone() for layer in (1, 2)}
    deltas = {(2, "stale"): one_layer_changes(ctx, reqs, [2], params).delta[0].double()}
    expected = {}

    def rotated(layer: int, delta: torch.Tensor) -> torch.Tensor:
        W, K = tiny.spec.get_weight(tiny.model, layer).double(), layer_keys(ctx, reqs, layer).double()
        M = 0.1 * W @ ctx.stats(layer) @ W.T + (K @ W.T + delta).T @ (K @ W.T)  # λ W C0 Wᵀ + V_E (W K_E)ᵀ
        return (procrustes(M) @ W).float()

    try:
        for layer in (1, 2):
            deltas[(layer, "fresh")] = one_layer_changes(ctx, reqs, [layer], params).delta[0].double()
            expected[(layer, "fresh")] = rotated(layer, deltas[(layer, "fresh")])
            if layer == 2:
                expected[(2, "stale")] = rotated(2, deltas[(2, "stale")])
            tiny.spec.set_weight(tiny.model, layer, expected[(layer, "fresh")])
    finally:
        for layer in (1, 2):
            tiny.spec.set_weight(tiny.model, layer, W0[layer])
    for layer in (1, 2):
        torch.testing.assert_close(after[layer], expected[(layer, "fresh")], rtol=0, atol=1e-6)
        assert matrix_stats(after[layer], W0[layer].double())["sv_drift"] < 1e-6
        assert diag["orthogonality"][str(layer)] < 1e-10
        assert diag["v"][0]["own_delta"][str(layer)]["v_steps"] == 3
    # layer 1's rotation moves δ_2 by ≈ 0.6 % here, and layer 2 by ≈ 3e-5 (≥ 10× the by-hand agreement above)
    assert float((after[2] - expected[(2, "stale")]).abs().max()) > 1e-5
    assert "z_residual" not in diag["v"][0]  # no z* in this variant


def test_targets_schema_and_report_label():
    from editbench.config import compose
    from editbench.errors import ConfigError
    from editbench.results.runs import variant_label
    from editbench.schema.check import validate

    assert compose(["model=tiny-llama"]).method.targets == "spread"
    validate(compose(["model=tiny-llama", "method.targets=own"]))
    with pytest.raises(ConfigError, match="method.targets='z_star'.*one of spread, own"):
        validate(compose(["model=tiny-llama", "method.targets=z_star"]))
    assert variant_label("MOSE (paper)", {"config:method.targets": "own"}) == "MOSE (paper, own V_E^l targets)"
    assert variant_label("MOSE (paper)", {"config:method.targets": "spread"}) == "MOSE (paper)"


def test_a_run_with_own_targets_records_each_layers_delta(tmp_path, data_dir, isolated_cache):
    from editbench.io import read_jsonl
    from tests.test_runner import tiny_run

    summary = tiny_run(tmp_path, data_dir, "method=mose", "num_edits=2", "method.targets=own")
    assert summary["n"] == 2
    for s in read_jsonl(tmp_path / "steps.jsonl"):
        recorded = {layer for group in s["v"] for layer in group["own_delta"]}
        assert recorded == {str(x) for x in s["layers"]}
        for layer in s["layers"]:
            assert s["matrices"][str(layer)]["sv_drift"] < 1e-6


def test_a_bare_method_config_takes_the_schemas_defaults_and_rules(tiny):
    """The editor reads rotation / targets / selection_optimizer / layer_selection through the schema
    (one list of allowed values, one default), also when no `validate` saw the config."""
    from editbench.errors import ConfigError
    from editbench.schema.methods import MoseConfig

    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], FixedStats(tiny.spec.ffn_size))
    editor = build_editor("mose", ctx, OmegaConf.create(MOSE_CFG))  # MOSE_CFG has none of the three
    assert (editor.rotation, editor.targets, editor.selection_optimizer) == (
        MoseConfig.rotation, MoseConfig.targets, MoseConfig.selection_optimizer) == (
        "orthogonal", "spread", "newton")
    for key, bad in [("rotation", "skew"), ("targets", "z_star"), ("selection_optimizer", "sgd"),
                     ("layer_selection", "all")]:
        with pytest.raises(ConfigError, match=rf"method.{key}='{bad}' is out of range: must be one of"):
            build_editor("mose", ctx, OmegaConf.create({**MOSE_CFG, key: bad}))
