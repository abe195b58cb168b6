"""MOSE (Xu et al., AAAI 2026): multiplicative orthogonal sequential editing, the paper's closed form.

Per edited layer (paper eq. 16-20, decisions D1-D4 in methods.md):
    min_{R ∈ O(d)} λ‖R W K0 − W K0‖² + ‖R W K_E − V_E‖²  =  min ‖R A − B‖²  (Procrustes)
    M = B Aᵀ = λ·W C0 Wᵀ + V_E (W K_E)ᵀ,   U Σ Vᵀ = svd(M),   R = U Vᵀ,   W ← R W.
K0 is never materialised: C0 = E[k kᵀ] stands in for K0 K0ᵀ. Each matrix keeps its cumulative
rotation Q_t = R_t Q_{t−1} in float64 and the weight is set to Q_t W0, so W0's singular values
survive any number of edits to float64 precision (D3). V_E comes from z* at the top edited layer,
spread bottom-up as in MEMIT (D2). The edited layers are chosen per request by eq. 22 (D4).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from editbench.data.records import EditRequest
from editbench.editors.base import Editor, register
from editbench.locate.reads import read_at_subject
from editbench.locate.spread import residual_targets, spread
from editbench.locate.values import ValueParams, optimize_values
from editbench.telemetry import singular_values


def procrustes(M: torch.Tensor) -> torch.Tensor:
    """argmax_{R ∈ O(d)} tr(Rᵀ M) = U Vᵀ for M = U Σ Vᵀ, i.e. argmin ‖R A − B‖ for M = B Aᵀ (eq. 19-20)."""
    U, _, Vh = torch.linalg.svd(M.to(torch.float64))
    return U @ Vh


def orthogonality_error(Q: torch.Tensor) -> float:
    """‖QᵀQ − I‖_F."""
    eye = torch.eye(Q.shape[0], dtype=Q.dtype, device=Q.device)
    return float(torch.linalg.matrix_norm(Q.T @ Q - eye))


@register("mose")
class Mose(Editor):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)
        self.lam = float(cfg.mom2_update_weight)
        self.mode = cfg.layer_selection
        if self.mode not in ("fixed", "select", "select_neighbors"):
            from editbench.errors import ConfigError

            raise ConfigError(f"method.layer_selection={self.mode!r}; use fixed, select or select_neighbors")
        self.values = ValueParams.from_cfg(cfg.value)
        self.rotations: dict[int, torch.Tensor] = {}  # Q_t per edited layer, float64 (d, d)
        self._gram0: dict[int, torch.Tensor] = {}  # W0 C0 W0ᵀ per layer
        self._spectral0: dict[int, float] = {}

    # --- which layers --------------------------------------------------------------------
    def candidates(self) -> list[int]:
        return [int(x) for x in (self.cfg.fixed_layers if self.mode == "fixed" else self.cfg.candidate_layers)]

    def stat_layers(self) -> list[int]:
        n = self.ctx.spec.n_layers
        layers = set(self.candidates())
        if self.mode == "select_neighbors":
            layers |= {min(max(c + o, 0), n - 1) for c in self.candidates() for o in (-1, 1)}
        return sorted(layers)

    def layer_scores(self, requests: list[EditRequest]) -> torch.Tensor:
        """Eq. 22 per (request, candidate): ‖v*_l − W_l k_l‖ / (‖W_l‖₂ · ‖k_l‖), δ at layer l's MLP output."""
        ctx, cands = self.ctx, self.candidates()
        steps = int(self.cfg.selection_steps)
        params = ValueParams(**{**self.values.__dict__, "steps": steps})
        keys = read_at_subject(ctx, requests, ["{}"], [(layer, "key") for layer in cands])
        res = optimize_values(ctx.model, ctx.tokenizer, ctx.spec, requests, ["{}"], cands, "mlp_out", params)
        change = (res.values - res.h0).norm(dim=1).reshape(len(cands), len(requests))  # the FFN-output change
        key_norms = torch.stack([keys[(layer, "key")][:, 0].norm(dim=1) for layer in cands])
        spectral = torch.tensor([self.spectral0(layer) for layer in cands], device=key_norms.device)
        return (change / (spectral[:, None] * key_norms)).T.cpu()  # (n, candidates)

    def spectral0(self, layer: int) -> float:
        if layer not in self._spectral0:  # rotations preserve ‖W‖₂: the current W gives W0's value
            self._spectral0[layer] = float(singular_values(self.weight(layer))[0])
        return self._spectral0[layer]

    def edited_set(self, best: int) -> list[int]:
        if self.mode == "select":
            return [best]
        n = self.ctx.spec.n_layers
        return sorted({min(max(best + o, 0), n - 1) for o in (-1, 0, 1)})

    # --- the edit ------------------------------------------------------------------------
    def edit(self, requests: list[EditRequest]) -> dict:
        diag: dict = {"layers": [], "chosen_layer": [], "layer_scores": None, "v": [], "orthogonality": {}}
        if self.mode == "fixed":
            groups = {tuple(self.candidates()): list(requests)}
        else:
            scores = self.layer_scores(requests)
            best = scores.argmin(dim=1).tolist()
            cands = self.candidates()
            diag["layer_scores"] = {str(c): scores[:, j].tolist() for j, c in enumerate(cands)}
            diag["chosen_layer"] = [cands[b] for b in best]
            grouped = defaultdict(list)
            for req, b in zip(requests, best, strict=True):
                grouped[tuple(self.edited_set(cands[b]))].append(req)
            groups = dict(grouped)
        for layers, group in groups.items():
            diag["v"].append(self.edit_group(group, list(layers), diag))
            diag["layers"] += [layer for layer in layers if layer not in diag["layers"]]
        diag["layers"].sort()
        return diag

    def edit_group(self, requests: list[EditRequest], layers: list[int], diag: dict) -> dict:
        z = residual_targets(self.ctx, requests, layers[-1], self.values)
        spread_record: dict = {}
        for t in spread(self.ctx, requests, layers, z.values, record=spread_record):
            diag["orthogonality"][str(t.layer)] = self.rotate(t.layer, t.keys, t.targets)
            share = t.residual if t.residual_space is None else t.residual_space
            diag.setdefault("residual_share", {})[str(t.layer)] = share.norm(dim=1).tolist()
            cos = torch.nn.functional.cosine_similarity(t.targets, t.outputs, dim=1)
            diag.setdefault("cos_target_output", {})[str(t.layer)] = cos.tolist()
        return {**z.diagnostics(), **spread_record}

    def rotate(self, layer: int, keys: torch.Tensor, targets: torch.Tensor) -> float:
        """One Procrustes step on `layer` for keys K_E (n, m) and target outputs V_E (n, d).

        Returns ‖QᵀQ − I‖ of the layer's cumulative rotation after the step.
        """
        W = self.weight(layer)
        outputs = keys.to(W) @ W.T
        M = self.lam * self.gram(layer) + targets.to(W).T @ outputs  # λ W C0 Wᵀ + V_E (W K_E)ᵀ
        Q = procrustes(M) @ self.rotations.get(layer, torch.eye(W.shape[0], dtype=torch.float64, device=W.device))
        if self.write_weight(layer, Q @ self.original(layer)):
            self.rotations[layer] = Q
        return orthogonality_error(self.rotations.get(layer, Q))

    def gram(self, layer: int) -> torch.Tensor:
        """W C0 Wᵀ for the current W = Q W0, as Q (W0 C0 W0ᵀ) Qᵀ: a d×d product per step, not d×m×m."""
        if layer not in self._gram0:
            W0 = self.original(layer)
            self._gram0[layer] = W0 @ self.ctx.stats(layer).to(W0) @ W0.T
        Q = self.rotations.get(layer)
        G0 = self._gram0[layer]
        return G0 if Q is None else Q @ G0 @ Q.T

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"rotation.{layer}": Q for layer, Q in self.rotations.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.rotations = {int(k.split(".")[1]): v.to(self.ctx.device, torch.float64) for k, v in state.items()
                          if k.startswith("rotation.")}
