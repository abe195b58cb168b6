"""PRUNE (Ma et al., ICLR 2025, "Perturbation-Restrained Sequential Model Editing") on MEMIT.

mjy1111/PRUNE `easyeditor/editors/bi_editor_loadw.py` (`func_logn`, `read_weights`; methods.md
§6, D8). With W0 the pre-edit matrix, ΔW = W − W0 = U Σ̂ Vᵀ and σ_max the largest singular
value of W0, every σ̂_i ≥ σ_max becomes
    F(σ̂_i) = log_α(σ̂_i) − log_α(σ_max) + σ_max        (α = 1.2: the README's "log1_2"),
the others stay, and W ← W0 + U F(Σ̂) Vᵀ: the restrained ΔW replaces the accumulated one, never
added on top of the edited W (the double count of AlphaEdit's re-implementation, §0.4).
`mode: post_hoc` (official) restrains once in finalize(); `online` after every step, and
editing continues from the restrained W.
"""

from __future__ import annotations

import math

import torch

from baselines.memit import Memit
from editbench.data.records import EditRequest
from editbench.editors.base import register
from editbench.errors import ConfigError
from editbench.numerics import singular_values


def restrain(delta: torch.Tensor, sigma_max: float, alpha: float) -> tuple[torch.Tensor, int, float]:
    """(ΔW with every singular value σ ≥ σ_max mapped to F(σ), how many were mapped, ΔW's largest
    singular value before the mapping), float64."""
    delta = delta.double()
    U, S, Vh = torch.linalg.svd(delta, full_matrices=False)
    big = S >= sigma_max
    F = (torch.log(S[big]) - math.log(sigma_max)) / math.log(alpha) + sigma_max
    # ΔW − U_big (Σ̂_big − F) V_bigᵀ: the small singular directions are left bit-for-bit as they were.
    return delta - (U[:, big] * (S[big] - F)) @ Vh[big], int(big.sum()), float(S[0])


@register("prune")
class Prune(Memit):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)
        self.mode = cfg.get("mode", "post_hoc")
        if self.mode not in ("post_hoc", "online"):
            raise ConfigError(f"method.mode={self.mode!r}; use post_hoc or online")
        self.alpha = float(cfg.get("alpha", 1.2))
        self._sigma_max0: dict[int, float] = {}  # σ_max(W0) per layer

    def sigma_max0(self, layer: int) -> float:
        if layer not in self._sigma_max0:
            self._sigma_max0[layer] = float(singular_values(self.original(layer))[0])
        return self._sigma_max0[layer]

    def restrain_all(self) -> dict:
        out = {}
        for layer in self.layers:
            if layer not in self.ctx.originals:
                continue
            W0 = self.original(layer)
            delta, n, sigma1 = restrain(self.weight(layer) - W0, self.sigma_max0(layer), self.alpha)
            accepted = self.write_weight(layer, W0 + delta)
            # σ1(ΔW) against σ_max(W0) says how far the accumulated update is from PRUNE's threshold
            out[str(layer)] = {"restrained": n, "sigma1_delta": sigma1, "sigma_max0": self.sigma_max0(layer),
                               "accepted": accepted}
        return {"prune": out}

    def after_step(self, requests: list[EditRequest]) -> dict:
        return self.restrain_all() if self.mode == "online" else {}

    def finalize(self) -> dict:
        return self.restrain_all() if self.mode == "post_hoc" else {}
