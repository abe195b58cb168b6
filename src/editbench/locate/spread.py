"""MEMIT's spread of a desired residual z* over several edited layers (methods.md §3 step 2, D2).

Shared by MEMIT, EMMET, AlphaEdit, RECT, PRUNE and MOSE: z* is optimised once at the top
edited layer; then, bottom-up, each layer gets its keys K (recomputed on the model as it stands
after the lower layers were updated) and an equal share of what is still missing at the top:
    R_i = (z* − z_current) / (L − i + 1),    target output V_i = W_i K_i + R_i.
The caller updates layer i inside the loop, before the generator moves on to layer i+1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from editbench.data.records import EditRequest
from editbench.locate.reads import layer_keys
from editbench.locate.templates import flat
from editbench.locate.values import ValueParams, ValueResult, optimize_values


@dataclass
class LayerTarget:
    layer: int
    keys: torch.Tensor  # K_i, (n, m), float64
    outputs: torch.Tensor  # W_i K_i as rows, (n, d), float64
    residual: torch.Tensor  # R_i, (n, d), float64: the change this layer should make

    @property
    def targets(self) -> torch.Tensor:
        """V_i = W_i K_i + R_i, (n, d)."""
        return self.outputs + self.residual


def residual_targets(ctx, requests: list[EditRequest], top_layer: int, params: ValueParams) -> ValueResult:
    """z*: the desired residual at the top edited layer, over all context templates."""
    return optimize_values(ctx.model, ctx.tokenizer, ctx.spec, requests, flat(ctx.templates),
                           top_layer, "residual", params)


def spread(ctx, requests: list[EditRequest], layers: list[int], z_star: torch.Tensor) -> Iterator[LayerTarget]:
    """Yield each edited layer's keys, outputs and residual share, bottom-up."""
    layers = sorted(layers)
    top = layers[-1]
    for i, layer in enumerate(layers):
        keys, z_current = layer_keys(ctx, requests, layer, z_layer=top)
        W = ctx.spec.get_weight(ctx.model, layer).to(torch.float64)
        keys = keys.to(W)
        share = (z_star.to(W) - z_current.to(W)) / (len(layers) - i)
        yield LayerTarget(layer, keys, keys @ W.T, share)
