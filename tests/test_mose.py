"""MOSE: the Procrustes step, spectrum preservation over long sequences, and a real edit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from omegaconf import OmegaConf

from editbench.editors.mose import orthogonality_error, procrustes
from editbench.locate.context import EditContext
from editbench.methods import build_editor
from editbench.telemetry import matrix_stats

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
    from editbench.sinks import read_jsonl
    from tests.test_runner import tiny_run

    tiny_run(tmp_path, data_dir, "method=mose_oft", "num_edits=2", "method.coft_eps=1.0")
    steps = read_jsonl(tmp_path / "steps.jsonl")
    assert steps[-1]["layers"] == [1, 2]
    for layer in ("1", "2"):
        m = steps[-1]["matrices"][layer]
        assert m["delta_fro"] > 0 and m["sv_drift"] < 1e-6
        assert steps[-1]["orthogonality"][layer] < 1e-10
