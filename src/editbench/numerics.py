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
