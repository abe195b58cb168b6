"""EMMET (Gupta et al. 2024, "A Unified Framework for Model Editing"): batched equality constraint.

scalable-model-editing/unified-model-editing `emmet/emmet_main.py` (methods.md §4):
    min ‖Ŵ K0 − W0 K0‖²  s.t.  Ŵ K_E = V_E   (batched ROME)
    C = λ·C0 + μ·I,   D = K_Eᵀ C⁻¹ K_E (+ ε·I when the batch has more than one request),
    ΔW = R D⁻¹ K_Eᵀ C⁻¹,
with a pseudo-inverse of D when it is singular. Keys, z* and the residual share R come from
MEMIT's machinery (single layer in the published configs, D9). With ε = 0 the constraint holds
exactly: ΔW K_E = R D⁻¹ D = R. Solved in float64.
"""

from __future__ import annotations

import torch

from baselines.memit import Memit
from editbench.editors.base import register
from editbench.locate.spread import LayerTarget


def emmet_delta(K: torch.Tensor, R: torch.Tensor, C0: torch.Tensor, lam: float, mu: float = 0.0,
                eps: float = 0.1) -> tuple[torch.Tensor, bool]:
    """(ΔW (d, m), whether D needed the pseudo-inverse) for keys K (n, m) and residuals R (n, d)."""
    K, R, C0 = K.double(), R.double(), C0.double()
    C = lam * C0 + mu * torch.eye(C0.shape[0], dtype=C0.dtype, device=C0.device)
    CinvK = torch.linalg.solve(C, K.T)  # C⁻¹ K_E, (m, n)
    D = K @ CinvK  # K_Eᵀ C⁻¹ K_E, (n, n)
    if K.shape[0] > 1:
        D = D + eps * torch.eye(D.shape[0], dtype=D.dtype, device=D.device)
    X, info = torch.linalg.solve_ex(D, CinvK.T)  # D⁻¹ K_Eᵀ C⁻¹ (C symmetric), (n, m)
    pinv = bool(info.item() != 0 or not torch.isfinite(X).all())
    if pinv:
        X = torch.linalg.pinv(D) @ CinvK.T
    return R.T @ X, pinv


@register("emmet")
class Emmet(Memit):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)
        self.mu = float(cfg.get("update_norm_lambda", 0.0))
        self.eps = float(cfg.get("emmet_lambda", 0.1))

    def layer_delta(self, t: LayerTarget, W: torch.Tensor) -> tuple[torch.Tensor, dict]:
        C0 = self.c0(t.layer, W)
        delta, pinv = emmet_delta(t.keys, t.residual, C0, self.lam, self.mu, self.eps)
        # Distances of the unified framework (its calculate_distances), on Ŵ = W + ΔW:
        # preservation ‖(Ŵ − W0) C0^{1/2}‖_F = RMS over the corpus of ‖(Ŵ − W0) k‖ (C0 is a mean),
        # new-edit distance mean_j ‖Ŵ k_j − v_j‖ and, before the edit, mean_j ‖W k_j − v_j‖.
        drift = W + delta - self.original(t.layer)
        preservation = float(torch.sqrt(((drift @ C0) * drift).sum().clamp_min(0)))
        new_edit = ((t.keys @ (W + delta).T) - t.targets).norm(dim=1).mean()
        return delta, {"pseudo_inverse": pinv, "preservation_distance": preservation,
                       "new_edit_distance": float(new_edit),
                       "old_edit_distance": float(t.residual.norm(dim=1).mean())}
