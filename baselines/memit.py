"""MEMIT (Meng et al., ICLR 2023): batched least squares, the residual spread over several layers.

kmeng01/memit `memit/memit_main.py` (paper eq. 14; methods.md §3). For a batch, z* is optimised
once at the top edited layer; bottom-up, each layer i gets its keys K_i (recomputed on the model
as it stands) and an equal share R_i of what is still missing at the top (`locate.spread`), and

    ΔW_i = R_i K_iᵀ (λ·C0_i + K_i K_iᵀ)⁻¹          (columns = requests, as in the paper)

solved in float64. In our row convention (K (n, m), R (n, d), W (d, m)) that is
ΔW = solve(λC0 + KᵀK, KᵀR)ᵀ, since λC0 + KᵀK is symmetric.

`Memit` is also the skeleton of EMMET, RECT, PRUNE and AlphaEdit: they override `layer_delta`
(the update rule), `apply` (how ΔW meets W) or `after_step` (memory / restraint after a step).
"""

from __future__ import annotations

import torch

from editbench.data.records import EditRequest
from editbench.editors.base import Editor, register
from editbench.locate.spread import LayerTarget, residual_targets, spread
from editbench.locate.values import ValueParams


def memit_delta(K: torch.Tensor, R: torch.Tensor, C0: torch.Tensor, lam: float) -> torch.Tensor:
    """ΔW (d, m) = R_i K_iᵀ (λC0 + K_i K_iᵀ)⁻¹ for keys K (n, m) and residual shares R (n, d)."""
    K, R, C0 = K.double(), R.double(), C0.double()
    return torch.linalg.solve(lam * C0 + K.T @ K, K.T @ R).T


@register("memit")
class Memit(Editor):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)
        self.layers = sorted(int(x) for x in cfg.layers)
        self.lam = self.c0_weight(cfg)
        self.values = ValueParams.from_cfg(cfg.value)

    def c0_weight(self, cfg) -> float | None:
        """λ, the weight of C0 in the solve (AlphaEdit, which has none, returns None)."""
        return float(cfg.mom2_update_weight)

    def stat_layers(self) -> list[int]:
        return list(self.layers)

    def c0(self, layer: int, like: torch.Tensor) -> torch.Tensor:
        return self.ctx.stats(layer).to(like)

    # --- the update rule and its hooks (overridden by the MEMIT-family baselines) ----------
    def layer_delta(self, t: LayerTarget, W: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return memit_delta(t.keys, t.residual, self.c0(t.layer, W), self.lam), {}

    def apply(self, layer: int, W: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return W + delta, {}

    def after_step(self, requests: list[EditRequest]) -> dict:
        return {}

    # --- one step ----------------------------------------------------------------------------
    def edit(self, requests: list[EditRequest]) -> dict:
        z = residual_targets(self.ctx, requests, self.layers[-1], self.values)
        diag: dict = {"layers": list(self.layers), **z.diagnostics(), "per_layer": {}}
        spread_record: dict = {}
        for t in spread(self.ctx, requests, self.layers, z.values, record=spread_record):
            W = self.weight(t.layer)
            delta, info = self.layer_delta(t, W)
            new, applied = self.apply(t.layer, W, delta)
            accepted = self.write_weight(t.layer, new)
            diag["per_layer"][str(t.layer)] = {
                "accepted": accepted, "residual_norm": t.share.norm(dim=1).tolist(),
                **({} if t.residual_space is None else {"prenorm_share_norm": t.residual.norm(dim=1).tolist()}),
                "delta_norm": float(torch.linalg.matrix_norm(new - W)), **info, **applied}
        diag.update(spread_record)  # z_residual: ‖z* − z_current‖ before each layer and after the last
        diag.update(self.after_step(requests))
        return diag
