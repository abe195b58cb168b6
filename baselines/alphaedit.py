"""AlphaEdit (Fang et al., ICLR 2025): MEMIT projected onto the null space of the preserved keys.

jianghoucheng/AlphaEdit `AlphaEdit/AlphaEdit_main.py` and `experiments/evaluate.py` (get_project;
methods.md §7). Per edited layer, once: C0 = U S Uᵀ (the *mean* second moment), Û = the
eigenvectors with eigenvalue < τ (`nullspace_threshold`), P = Û Ûᵀ. Per step and layer, with
z*, keys K1 and residual share R_i as in MEMIT and C_p = Σ K_p K_pᵀ over earlier edits (paper
eq. 14, in the transposed form the code solves):
    (P (K1 K1ᵀ + C_p) + α·I) X = P K1 R_iᵀ,     ΔW = Xᵀ = R_i K1ᵀ P (K_p K_pᵀ P + K1 K1ᵀ P + α I)⁻¹
with α = `L2`. X lies in the range of P, so ΔW k = 0 for every k in the kept (large-eigenvalue)
directions of C0. After all layers are updated, the keys are recomputed on the edited model and
K1 K1ᵀ is added to C_p. Solved in float32 like the reference (`solve_dtype: float64` optional);
P and C_p are kept in float32 on the edited layer's device, P is cached under $EDITBENCH_CACHE/projectors.
"""

from __future__ import annotations

import logging

import torch

from baselines.memit import Memit
from editbench.cache import TensorCache, digest
from editbench.data.records import EditRequest
from editbench.editors.base import register
from editbench.locate.reads import group_mean, read_at_subject
from editbench.locate.spread import LayerTarget
from editbench.locate.templates import flat

log = logging.getLogger(__name__)
PROJECTORS = TensorCache("projectors", "P")


def null_space_projector(C0: torch.Tensor, threshold: float) -> torch.Tensor:
    """P = Û Ûᵀ, Û the eigenvectors of the symmetric C0 with eigenvalue < threshold."""
    S, U = torch.linalg.eigh(C0.double())
    small = U[:, S < threshold]
    return small @ small.T


def alphaedit_delta(K: torch.Tensor, R: torch.Tensor, P: torch.Tensor, Cp: torch.Tensor, alpha: float,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ΔW (d, m) for keys K (n, m), residual shares R (n, d), projector P and memory C_p (m, m)."""
    K, R, P, Cp = (x.to(dtype) for x in (K, R, P, Cp))
    eye = torch.eye(P.shape[0], dtype=dtype, device=P.device)
    return torch.linalg.solve(P @ (K.T @ K + Cp) + alpha * eye, P @ K.T @ R).T


@register("alphaedit")
class AlphaEdit(Memit):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)  # no λ: C0 enters through the projector P only
        self.threshold = float(cfg.get("nullspace_threshold", 2e-2))
        self.alpha = float(cfg.get("L2", 10.0))
        self.dtype = getattr(torch, str(cfg.get("solve_dtype", "float32")))
        self.projectors: dict[int, torch.Tensor] = {}
        # C_p (m×m, 822 MB at d_ff 14336) lives with its layer's matrix: kept on the host, as the
        # reference does, it crossed PCIe twice per layer and step and held host RAM.
        self.cache_c = {layer: torch.zeros(ctx.spec.ffn_size, ctx.spec.ffn_size, device=self.layer_device(layer))
                        for layer in self.layers}

    def layer_device(self, layer: int) -> torch.device:
        return self.ctx.spec.weight_device(self.ctx.model, layer)

    def c0_weight(self, cfg) -> None:
        return None

    # --- P, in the keyed cache beside C0's, keyed by C0's key and τ --------------------------------
    def projector_key(self, layer: int) -> str | None:
        key_fn = getattr(self.ctx.stats, "key", None)
        if key_fn is None:  # statistics without a cache key (tests): keep P in memory only
            return None
        return digest(key_fn(layer), self.threshold)

    def stat_layers(self) -> list[int]:  # C0 is needed only where P is not cached yet
        return [layer for layer in self.layers
                if not ((key := self.projector_key(layer)) and PROJECTORS.path(f"P-layer{layer}", key).is_file())]

    def projector(self, layer: int) -> torch.Tensor:
        if layer not in self.projectors:
            key = self.projector_key(layer)
            P = PROJECTORS.load(f"P-layer{layer}", key, self.layer_device(layer)) if key is not None else None
            if P is None:
                P = null_space_projector(self.ctx.stats(layer), self.threshold).float()
                if key is not None:
                    PROJECTORS.save(f"P-layer{layer}", key, P, {"threshold": repr(self.threshold),
                                                                "stats_key": self.ctx.stats.key(layer)})
            log.info("AlphaEdit layer %d: null space keeps %d of %d directions", layer,
                     round(float(torch.trace(P))), P.shape[0])
            self.projectors[layer] = P.to(self.layer_device(layer))
        return self.projectors[layer]

    # --- the update -------------------------------------------------------------------------------
    def layer_delta(self, t: LayerTarget, W: torch.Tensor) -> tuple[torch.Tensor, dict]:
        P, Cp = self.projector(t.layer).to(W.device), self.cache_c[t.layer].to(W.device)
        delta = alphaedit_delta(t.keys, t.residual, P, Cp, self.alpha, self.dtype).to(W)
        return delta, {"null_space_dim": round(float(torch.trace(P)))}

    def after_step(self, requests: list[EditRequest]) -> dict:
        """C_p += K1 K1ᵀ per layer, keys recomputed on the model after all layers were updated."""
        reads = read_at_subject(self.ctx, requests, flat(self.ctx.templates), [(x, "key") for x in self.layers])
        for layer in self.layers:
            K = group_mean(reads[(layer, "key")], self.ctx.templates).to(self.cache_c[layer])
            self.cache_c[layer] += K.T @ K
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"cache_c.{layer}": C for layer, C in self.cache_c.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, C in state.items():
            if name.startswith("cache_c."):
                layer = int(name.split(".")[1])
                self.cache_c[layer] = C.to(self.layer_device(layer), torch.float32)
