"""MEMIT's spread of a desired residual z* over several edited layers (methods.md §3 step 2, D2).

Shared by MEMIT, EMMET, AlphaEdit, RECT, PRUNE and MOSE: z* is optimised once at the top
edited layer; then, bottom-up, each layer gets its keys K (recomputed on the model as it stands
after the lower layers were updated) and an equal share of what is still missing at the top:
    R_i = (z* − z_current) / (L − i + 1),    target output V_i = W_i K_i + R_i.
The caller updates layer i inside the loop, before the generator moves on to layer i+1.

Where the block normalises the MLP output before the residual add (Gemma3, D14), R_i is a
change of n(W_i k), not of W_i k: it is mapped once here (locate/normed.py) into the pre-norm
change the down projection must make, so every method downstream (MEMIT, EMMET, AlphaEdit,
RECT, PRUNE, MOSE) solves for the right thing. Families without the norm take the old path.

`record`, when given, receives the spread's diagnostics: the remaining ‖z* − z_current‖ per
request before each layer and after the last one (`z_residual`, one list per stage), which the
run's guard (editbench/guard.py) checks for growth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from editbench.data.records import EditRequest
from editbench.locate.normed import prenorm_share
from editbench.locate.reads import layer_keys, read_at_subject
from editbench.locate.templates import flat
from editbench.locate.values import ValueParams, ValueResult, optimize_values


@dataclass
class LayerTarget:
    layer: int
    keys: torch.Tensor  # K_i, (n, m), float64
    outputs: torch.Tensor  # W_i K_i as rows, (n, d), float64
    residual: torch.Tensor  # R_i, (n, d), float64: the change of W_i K_i this layer should make
    # the residual-space share before the norm mapping (is `residual` where the MLP output is not normed)
    residual_space: torch.Tensor | None = None

    @property
    def share(self) -> torch.Tensor:
        """The residual-space share R_i this layer was handed (before any norm mapping), (n, d)."""
        return self.residual if self.residual_space is None else self.residual_space

    @property
    def targets(self) -> torch.Tensor:
        """V_i = W_i K_i + R_i, (n, d)."""
        return self.outputs + self.residual


def residual_targets(ctx, requests: list[EditRequest], top_layer: int, params: ValueParams) -> ValueResult:
    """z*: the desired residual at the top edited layer, over all context templates."""
    return optimize_values(ctx, requests, flat(ctx.templates),
                           top_layer, "residual", params)


def spread(ctx, requests: list[EditRequest], layers: list[int], z_star: torch.Tensor,
           record: dict | None = None) -> Iterator[LayerTarget]:
    """Yield each edited layer's keys, outputs and residual share, bottom-up."""
    layers = sorted(layers)
    top = layers[-1]
    remaining: list[list[float]] = []
    for i, layer in enumerate(layers):
        keys, z_current = layer_keys(ctx, requests, layer, z_layer=top)
        W = ctx.spec.get_weight(ctx.model, layer).to(torch.float64)
        keys = keys.to(W)
        missing = z_star.to(W) - z_current.to(W)
        remaining.append(missing.norm(dim=1).tolist())
        share = missing / (len(layers) - i)
        outputs = keys @ W.T
        if ctx.spec.mlp_output_normed:
            gain, eps = ctx.spec.mlp_output_gain(ctx.model, layer)
            yield LayerTarget(layer, keys, outputs, prenorm_share(outputs, share, gain.to(W.device), eps), share)
        else:
            yield LayerTarget(layer, keys, outputs, share)
    if record is not None:  # after the caller updated the top layer: what the spread left undone
        z_after = read_at_subject(ctx, requests, ["{}"], [(top, "residual")])[(top, "residual")][:, 0]
        remaining.append((z_star.to(z_after) - z_after).norm(dim=1).tolist())
        record["z_residual"] = remaining
