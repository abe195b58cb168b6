"""ROME (Meng et al., NeurIPS 2022): a rank-one update of one MLP down projection per fact.

kmeng01/rome `rome/rome_main.py`, `compute_u.py`, `compute_v.py` (paper eq. 2; methods.md §2):
    u  = C0⁻¹ k̄  (`mom2_adjustment: true`) or k̄ (false; the LLaMA/Qwen configs),
    ΔW = (v* − W k_b) uᵀ / (uᵀ k_b),
with k̄ the plain mean of the key over the 21 context templates (`grouping: flat`), k_b the key
of the bare prompt, and v* the MLP output found by the value optimisation with δ added at this
layer's MLP output (`site="mlp_out"`). Then W′ k_b = v* exactly. W k_b is read as the MLP output
at the bare prompt, so GPT-2's c_proj bias is included. Solved in float64.

ROME edits one fact at a time. A step with several requests (batch_size > 1) applies them as
consecutive rank-one edits, each on the model left by the previous one.
"""

from __future__ import annotations

import torch

from editbench.data.records import EditRequest
from editbench.editors.base import Editor, register
from editbench.errors import ConfigError
from editbench.locate.reads import layer_keys, read_at_subject
from editbench.locate.templates import flat
from editbench.locate.values import ValueParams, optimize_values


def rome_delta(u: torch.Tensor, k_b: torch.Tensor, v_star: torch.Tensor, w_b: torch.Tensor) -> torch.Tensor:
    """ΔW (d, m) = (v* − w_b) uᵀ / (uᵀ k_b), where w_b = W k_b is the current output for k_b."""
    u, k_b, v_star, w_b = u.double(), k_b.double(), v_star.double(), w_b.double()
    return torch.outer(v_star - w_b, u) / (u @ k_b)


@register("rome")
class Rome(Editor):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)
        layers = [int(x) for x in cfg.layers]
        if len(layers) != 1:
            raise ConfigError(f"ROME edits one layer; method.layers={layers} (give one, e.g. [4])")
        self.layer = layers[0]
        self.mom2 = bool(cfg.get("mom2_adjustment", False))
        self.values = ValueParams.from_cfg(cfg.value)

    def stat_layers(self) -> list[int]:
        return [self.layer] if self.mom2 else []

    def edit(self, requests: list[EditRequest]) -> dict:
        results = [self.edit_one(req) for req in requests]  # one rank-one edit per fact, in order
        accepted, norms, values = zip(*results, strict=True)
        return {"layers": [self.layer], "accepted": list(accepted), "delta_norm": list(norms), "v": list(values)}

    def edit_one(self, req: EditRequest) -> tuple[bool, float, dict]:
        ctx, layer = self.ctx, self.layer
        W = self.weight(layer)
        k_mean = layer_keys(ctx, [req], layer)[0].to(W)  # k̄ over all templates
        u = torch.linalg.solve(ctx.stats(layer).to(W), k_mean) if self.mom2 else k_mean
        res = optimize_values(ctx, [req], flat(ctx.templates), layer, "mlp_out",
                              self.values)
        bare = read_at_subject(ctx, [req], ["{}"], [(layer, "key"), (layer, "mlp_out")])
        k_b, w_b = bare[(layer, "key")][0, 0].to(W), bare[(layer, "mlp_out")][0, 0].to(W)
        delta = rome_delta(u, k_b, res.values[0], w_b)
        accepted = self.write_weight(layer, W + delta)
        return accepted, float(torch.linalg.matrix_norm(delta)), res.diagnostics()
