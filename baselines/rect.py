"""RECT (Gu et al., EMNLP 2024, "Model Editing Harms General Abilities ..."): sparsify MEMIT's update.

JasonForJoy/Model-Editing-Hurt (`rome_main.py`, the commented RECT block) and AlphaEdit's
`memit_rect_main.py` (methods.md §5, D7). With W the current weights and ΔW MEMIT's update,
    r_ij = |ΔW_ij| / (|W_ij| + ε),   M = 1[r_ij among the top keep_ratio of r],   W ← W + M ⊙ ΔW,
with ε = 1e-8. keep_ratio = 0.2 (the official snippet zeroes 80%; AlphaEdit keeps 40%).
"""

from __future__ import annotations

import torch

from baselines.memit import Memit
from editbench.editors.base import register


def rect_mask(delta: torch.Tensor, W: torch.Tensor, keep_ratio: float, eps: float = 1e-8) -> torch.Tensor:
    """Boolean mask of the round(keep_ratio · numel) entries with the largest relative change."""
    rel = delta.abs() / (W.abs() + eps)
    k = min(max(int(round(keep_ratio * rel.numel())), 1), rel.numel())
    mask = torch.zeros(rel.numel(), dtype=torch.bool, device=rel.device)
    mask[torch.topk(rel.flatten(), k).indices] = True
    return mask.view_as(rel)


@register("rect")
class Rect(Memit):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)
        self.keep_ratio = float(cfg.get("keep_ratio", 0.2))

    def apply(self, layer: int, W: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, dict]:
        mask = rect_mask(delta, W, self.keep_ratio)
        kept = float(torch.linalg.matrix_norm(delta * mask) / torch.linalg.matrix_norm(delta).clamp_min(1e-300))
        return W + delta * mask, {"kept_norm_fraction": kept}
