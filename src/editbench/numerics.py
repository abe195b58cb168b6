"""Spectra of matrices in float64: the singular values, the smallest non-zero one, norms and drift.

Shared by the run's telemetry (the paper's Fig. 2 numbers) and the editors that read a spectrum
(MOSE's rank-r rotation, PRUNE's singular-value cap).
"""

from __future__ import annotations

import torch


def singular_values(W: torch.Tensor) -> torch.Tensor:
    """All singular values in float64, descending."""
    return torch.linalg.svdvals(W.detach().to(torch.float64))


def smallest_nonzero(sv: torch.Tensor, shape: tuple[int, ...]) -> float:
    """The smallest σ above numpy.linalg.matrix_rank's tolerance σ_max · max(d, m) · eps (0.0 if none)."""
    nonzero = sv[sv > sv[0] * max(shape) * torch.finfo(torch.float64).eps]
    return float(nonzero[-1]) if len(nonzero) else 0.0


def matrix_stats(W: torch.Tensor, W0: torch.Tensor | None = None, sv0: torch.Tensor | None = None) -> dict:
    """Frobenius and spectral norm, smallest non-zero σ, condition number, and drift from W0.

    "Non-zero" uses numpy.linalg.matrix_rank's tolerance: σ > σ_max · max(d, m) · eps(float64).
    `sv0` (the singular values of W0) may be passed to avoid recomputing them every step.
    """
    W = W.detach().to(torch.float64)
    sv = singular_values(W)
    sigma_min = smallest_nonzero(sv, W.shape)
    stats = {
        "fro": float(torch.linalg.matrix_norm(W)),
        "spectral": float(sv[0]),
        "sigma_min": sigma_min,
        "cond": float(sv[0] / sigma_min) if sigma_min > 0 else float("inf"),
    }
    if W0 is not None:
        W0 = W0.detach().to(torch.float64)
        if sv0 is None:
            sv0 = singular_values(W0)
        stats["delta_fro"] = float(torch.linalg.matrix_norm(W - W0))
        stats["sv_drift"] = float((sv - sv0).abs().max() / sv0[0])
    return stats


def norm_stats(W: torch.Tensor, W0: torch.Tensor, rows: int = 1024) -> dict:
    """The O(d·m) part of matrix_stats: Frobenius norms of W, W0 and W − W0 in float64 (no SVD), row block
    by row block (no float64 copy of a whole matrix; telemetry_spectra=off at paper widths)."""
    sums = torch.zeros(3, dtype=torch.float64)
    for i in range(0, W.shape[0], rows):
        block, block0 = W[i : i + rows].detach().to(torch.float64), W0[i : i + rows].detach().to(torch.float64)
        sums += torch.stack([block.square().sum(), (block - block0).square().sum(), block0.square().sum()]).cpu()
    fro, delta_fro, fro0 = sums.sqrt().tolist()
    return {"fro": fro, "delta_fro": delta_fro, "fro0": fro0}


def checked_update_ratio(new: torch.Tensor, old: torch.Tensor, dtype: torch.dtype, rows: int = 1024) -> float | None:
    """‖new − old‖_F / ‖old‖_F in float64 (norm_stats, row block by row block: no float64 copy of a whole
    matrix, 470 MB per write at LLaMA3-8B's 4096×14336), or None when `new` or its cast to `dtype` has a
    non-finite entry."""
    for i in range(0, new.shape[0], rows):
        block = new[i : i + rows]
        if not torch.isfinite(block).all() or not torch.isfinite(block.to(dtype)).all():
            return None
    norms = norm_stats(new, old, rows)
    return norms["delta_fro"] / max(norms["fro0"], 1e-300)
