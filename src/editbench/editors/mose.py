"""MOSE (Xu et al., AAAI 2026): multiplicative orthogonal sequential editing, the paper's closed form.

Per edited layer (paper eq. 16-20, decisions D1-D4 in methods.md):
    min_{R ∈ O(d)} λ‖R W K0 − W K0‖² + ‖R W K_E − V_E‖²  =  min ‖R A − B‖²  (Procrustes)
    M = B Aᵀ = λ·W C0 Wᵀ + V_E (W K_E)ᵀ,   U Σ Vᵀ = svd(M),   R = U Vᵀ,   W ← R W.
K0 is never materialised: C0 = E[k kᵀ] stands in for K0 K0ᵀ. Each matrix keeps its cumulative
rotation Q_t = R_t Q_{t−1} in float64 and the weight is set to Q_t W0, so W0's singular values
survive any number of edits to float64 precision (D3). V_E comes from z* at the top edited layer,
spread bottom-up as in MEMIT (D2). The edited layers are chosen per request by eq. 22 (D4).
`targets: own` (a variant, issue 20) gives each edited layer eq. 22's own V_E^l = W^l K_E^l + δ_l instead.

Each step's record says where the edit went (`edit_geometry`, per edited layer and request: ‖W k‖,
the requested change split along and across W k, the norm gap no rotation can close, what the
rotation realised and what it missed) and, per group, the spread's `z_residual` with the group's
`case_ids` (experiments/mose/where_edits_go.py reads both).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from editbench.data.records import EditRequest
from editbench.editors.base import Editor, register
from editbench.locate.layer_change import one_layer_changes, own_targets
from editbench.locate.reads import read_at_subject
from editbench.locate.spread import residual_targets, spread
from editbench.locate.values import ValueParams
from editbench.numerics import singular_values
from editbench.schema.check import setting
from editbench.schema.methods import MoseConfig


def procrustes(M: torch.Tensor, special: bool = False) -> torch.Tensor:
    """argmax_{R ∈ O(d)} tr(Rᵀ M) = U Vᵀ for M = U Σ Vᵀ, i.e. argmin ‖R A − B‖ for M = B Aᵀ (eq. 19-20).

    U Vᵀ may be a reflection (det −1): for one edit det M = det(λG)(1 + uᵀ(λG)⁻¹v) with G = W C0 Wᵀ,
    which turns negative when the edit term outweighs λG along some direction (small λ).
    `special=True` solves over SO(d) instead (Kabsch / Umeyama): U diag(1, …, 1, det(U Vᵀ)) Vᵀ.
    With Z = Uᵀ R V, tr(Rᵀ M) = Σ σ_i Z_ii and det Z = det(U Vᵀ) for R ∈ SO(d); when that is −1 the
    best such Z is diag(1, …, 1, −1), which gives up only the smallest singular value σ_d.
    """
    U, _, Vh = torch.linalg.svd(M.to(torch.float64))
    if special:
        sign = torch.linalg.det(U @ Vh).sign()
        U = U.clone()
        U[:, -1] *= sign
    return U @ Vh


EDIT_GEOMETRY_FIELDS = ("output_norm", "change_norm", "change_along_output", "change_across_output",
                        "norm_gap", "realised_norm", "realised_along_change", "miss_after")


def edit_geometry(outputs: torch.Tensor, targets: torch.Tensor, outputs_after: torch.Tensor) -> dict[str, list]:
    """Where one layer's edit goes, per request (rows): what was asked of W k and what the step did.

    w = W k before the step (`outputs`), v = V_E (`targets`), c = v − w the requested change,
    w' = W' k after it (`outputs_after`; = w where the guard refused the write). With ŵ = w/‖w‖:
      output_norm           ‖w‖
      change_norm           ‖c‖
      change_along_output   c·ŵ (signed; > 0 asks W k to grow)
      change_across_output  ‖c − (c·ŵ)ŵ‖, so along² + across² = ‖c‖²
      norm_gap              ‖v‖ − ‖w‖: a rotation keeps ‖W k‖ (eq. 15), so no R gets closer to v
                            than |norm_gap| (the part of the request that is out of reach)
      realised_norm         ‖w' − w‖ (≤ 2‖w‖ for a rotation)
      realised_along_change (w' − w)·ĉ: how much of the request the step delivered
      miss_after            ‖v − w'‖ (≥ |norm_gap| for a rotation)
    """
    w, v, w_after = outputs.double(), targets.double(), outputs_after.double()
    c = v - w
    w_norm = w.norm(dim=1)
    w_hat = w / w_norm.clamp_min(1e-300)[:, None]
    along = (c * w_hat).sum(dim=1)
    across = (c - along[:, None] * w_hat).norm(dim=1)
    realised = w_after - w
    c_norm = c.norm(dim=1)
    realised_along = (realised * c).sum(dim=1) / c_norm.clamp_min(1e-300)
    values = (w_norm, c_norm, along, across, v.norm(dim=1) - w_norm, realised.norm(dim=1), realised_along,
              (v - w_after).norm(dim=1))
    return {name: x.tolist() for name, x in zip(EDIT_GEOMETRY_FIELDS, values, strict=True)}


def orthogonality_error(Q: torch.Tensor) -> float:
    """‖QᵀQ − I‖_F."""
    eye = torch.eye(Q.shape[0], dtype=Q.dtype, device=Q.device)
    return float(torch.linalg.matrix_norm(Q.T @ Q - eye))


@register("mose")
class Mose(Editor):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)
        self.lam = float(cfg.mom2_update_weight)
        # allowed values and defaults from the schema (schema/methods.py), also for a bare method config
        self.mode = setting(MoseConfig, cfg, "layer_selection")
        self.values = ValueParams.from_cfg(cfg.value)
        self.rotation = setting(MoseConfig, cfg, "rotation")  # orthogonal | special_orthogonal (D15)
        self.targets = setting(MoseConfig, cfg, "targets")  # V_E^l: spread (D2) | own (eq. 22's δ_l)
        self.selection_optimizer = setting(MoseConfig, cfg, "selection_optimizer")  # newton | adam
        self.rotations: dict[int, torch.Tensor] = {}  # Q_t per edited layer, float64 (d, d)
        self.last_det: dict[int, tuple[float, float]] = {}  # (det R_t, det Q_t) of the last step per layer
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
        return self.layer_score_parts(requests)["score"]

    def layer_score_parts(self, requests: list[EditRequest]) -> dict[str, torch.Tensor]:
        """Eq. 22's numerator ‖δ_l‖, its denominator ‖W_l‖₂·‖k_l‖ and the score, each (n, candidates).

        Which V_E^l: the one-layer change. δ_l is the change of layer l's MLP output (= W_l k_l, the
        down projection's output) that alone makes the model say the target, found by the shared
        value optimisation at site "mlp_out" (ROME's site; locate/layer_change.py). The update itself
        uses a different V_E by default: z* at the top of the edited set, spread over {l*−1, l*, l*+1}
        (D2). That V_E depends on the edited set, i.e. on l*, so it cannot be what chooses l*; the
        single-layer change is the quantity eq. 22 can compare across candidates before anything is
        chosen. (`targets: own` rotates each edited layer towards this δ_l itself.)

        How much change: `selection_optimizer: newton` (default) runs δ_l to the same early stop as
        z* (`selection_steps`, value.early_stop) with Newton steps on the loss, whose length follows
        the gradient, so ‖δ_l‖ estimates the distance to success at layer l (a δ_l that never
        reaches the early stop counts as the value clamp, clamp_norm_factor·‖h0‖). `adam` with
        `selection_steps: 5` is the earlier rule: a few Adam steps of length ≈ lr·√d each whatever
        the gradient, which makes ‖δ_l‖ nearly constant over layers and leaves the choice to
        1/(‖W_l‖₂‖k_l‖) (issue 26, experiments/mose/layer_scores.py).
        """
        ctx, cands = self.ctx, self.candidates()
        params = self.selection_params()
        keys = read_at_subject(ctx, requests, ["{}"], [(layer, "key") for layer in cands])
        res = one_layer_changes(ctx, requests, cands, params)
        change, final = res.delta.norm(dim=2), res.loss  # the FFN-output change, (candidates, n)
        if self.selection_optimizer == "newton":
            # Where δ_l did not reach the early stop, the edit needs more than the value clamp allows
            # at layer l: score it with that bound, a lower bound on the change it needs (otherwise a
            # layer where nothing helps would keep δ = 0 and look the cheapest).
            short = final >= params.early_stop
            change = torch.where(short, params.clamp_norm_factor * res.h0.norm(dim=2), change)
        key_norms = torch.stack([keys[(layer, "key")][:, 0].norm(dim=1) for layer in cands])
        spectral = torch.tensor([self.spectral0(layer) for layer in cands], device=key_norms.device)
        denom = spectral[:, None] * key_norms
        return {"delta_norm": change.T.cpu(), "denominator": denom.T.cpu(), "score": (change / denom).T.cpu(),
                "loss_final": final.T.cpu(), "steps": torch.tensor(res.steps)}

    def selection_params(self) -> ValueParams:
        """The value settings of eq. 22's δ_l (and of `targets: own`): `value`, with the selection's steps and optimiser."""
        return ValueParams(**{**self.values.__dict__, "steps": int(self.cfg.selection_steps),
                              "optimizer": self.selection_optimizer})

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
        diag: dict = {"layers": [], "chosen_layer": [], "layer_scores": None, "v": [], "orthogonality": {},
                      "det_step": {}, "det_cumulative": {}}
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
        """Rotate each edited layer, bottom-up, towards its target V_E^l = W^l K_E^l + change (eq. 17-20).

        targets=spread (D2): change = (z* − z)/(L − i + 1), one z* optimised at the top edited layer;
        targets=own (eq. 22's V_E^l): change = δ_l, the layer's own one-layer change, found when the
        layer is reached (after the rotations below it), with the layer scores' settings.
        """
        record: dict = {"case_ids": [r.case_id for r in requests]}
        if self.targets == "own":
            targets = own_targets(self.ctx, requests, layers, self.selection_params(), record=record)
        else:
            z = residual_targets(self.ctx, requests, layers[-1], self.values)
            record.update(z.diagnostics())
            targets = spread(self.ctx, requests, layers, z.values, record=record)
        for t in targets:
            diag["orthogonality"][str(t.layer)] = self.rotate(t.layer, t.keys, t.targets)
            geometry = edit_geometry(t.outputs, t.targets, t.keys @ self.weight(t.layer).T)
            entry = diag.setdefault("edit_geometry", {}).setdefault(str(t.layer), {"case_ids": []})
            entry["case_ids"] += [r.case_id for r in requests]  # a layer shared by two groups: both, in order
            for name, values in geometry.items():
                entry.setdefault(name, []).extend(values)
            diag["det_step"][str(t.layer)], diag["det_cumulative"][str(t.layer)] = self.last_det[t.layer]
            diag.setdefault("residual_share", {})[str(t.layer)] = t.share.norm(dim=1).tolist()
            cos = torch.nn.functional.cosine_similarity(t.targets, t.outputs, dim=1)
            diag.setdefault("cos_target_output", {})[str(t.layer)] = cos.tolist()
        # spread: z_residual, ‖z* − z‖ at the top layer per request before each layer and after all;
        # own: own_delta, each layer's value-optimisation record
        return record

    def rotate(self, layer: int, keys: torch.Tensor, targets: torch.Tensor) -> float:
        """One Procrustes step on `layer` for keys K_E (n, m) and target outputs V_E (n, d).

        Returns ‖QᵀQ − I‖ of the layer's cumulative rotation after the step; `last_det[layer]` holds
        (det R_t, det Q_t) of the step's rotation and of the cumulative one (−1: a reflection).
        """
        W = self.weight(layer)
        outputs = keys.to(W) @ W.T
        M = self.lam * self.gram(layer) + targets.to(W).T @ outputs  # λ W C0 Wᵀ + V_E (W K_E)ᵀ
        R = procrustes(M, special=self.rotation == "special_orthogonal")
        Q = R @ self.rotations.get(layer, torch.eye(W.shape[0], dtype=torch.float64, device=W.device))
        if self.write_weight(layer, Q @ self.original(layer)):
            self.rotations[layer] = Q
        current = self.rotations.get(layer, Q)
        self.last_det[layer] = (float(torch.linalg.det(R)), float(torch.linalg.det(current)))
        return orthogonality_error(current)

    def gram(self, layer: int) -> torch.Tensor:
        """W C0 Wᵀ for the current W = Q W0, as Q (W0 C0 W0ᵀ) Qᵀ: a d×d product per step, not d×m×m."""
        if layer not in self._gram0:
            W0 = self.original(layer)
            self._gram0[layer] = W0 @ self.ctx.stats(layer).to(W0) @ W0.T
            # MOSE reads C0 only through this d×d product: drop the m×m matrix (1.6 GB at d_ff 14336;
            # with every candidate layer's C0 kept, LLaMA3-8B's 23 layers held 37 GB)
            release = getattr(self.ctx.stats, "release", None)
            if release is not None:
                release(layer)
        Q = self.rotations.get(layer)
        G0 = self._gram0[layer]
        return G0 if Q is None else Q @ G0 @ Q.T

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"rotation.{layer}": Q for layer, Q in self.rotations.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.rotations = {int(k.split(".")[1]): v.to(self.ctx.device, torch.float64) for k, v in state.items()
                          if k.startswith("rotation.")}
