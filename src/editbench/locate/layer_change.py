"""The one-layer FFN-output change δ_l of MOSE eq. 21-22, and per-layer targets built from it.

δ_l is the change of layer l's MLP output (= W_l k_l, the down projection's output) at the
subject's last token of the bare prompt that alone makes the model say the target: the shared
value optimisation (locate/values.py) at site "mlp_out", ROME's site. Eq. 22 compares
‖V_E^l − W^l K_E^l‖ = ‖δ_l‖ across layers to choose l* (MOSE's layer scores, issue 26);
`own_targets` hands each edited layer its own V_E^l = W^l K_E^l + δ_l instead of a share of one
z* spread over the edited set (locate/spread.py, D2): MOSE's `method.targets: own` variant.

The MLP output is the down projection's output before any post-MLP norm (Gemma3's
post_feedforward_layernorm sits outside the MLP module), so δ_l is already the change W_l k_l
must make: no norm mapping (locate/normed.py) is needed, unlike the spread's residual share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from editbench.data.records import EditRequest
from editbench.locate.reads import layer_keys
from editbench.locate.spread import LayerTarget
from editbench.locate.values import ValueParams, optimize_values


@dataclass
class LayerChanges:
    """δ_l per (layer, request) from one value optimisation over all the layers at once."""

    delta: torch.Tensor  # (layers, n, d): the MLP-output change
    h0: torch.Tensor  # (layers, n, d): the MLP output on the bare prompt before it
    loss: torch.Tensor  # (layers, n): the loss of the δ returned (Newton returns its best δ, Adam its last)
    initial_loss: torch.Tensor  # (layers, n)
    steps: int

    def diagnostics(self, j: int) -> dict:
        """Layer j's record, in the value optimisation's names (editbench/guard.py checks them)."""
        return {"v_steps": self.steps, "v_loss_final": self.loss[j].tolist(),
                "v_loss_initial": self.initial_loss[j].tolist(),
                "delta_over_h0": (self.delta[j].norm(dim=1) / self.h0[j].norm(dim=1)).tolist()}


def one_layer_changes(ctx, requests: list[EditRequest], layers: Sequence[int], params: ValueParams) -> LayerChanges:
    """δ_l at every layer of `layers`, each on its own (the layers share forward passes, not δ)."""
    res = optimize_values(ctx, requests, ["{}"], list(layers), "mlp_out", params)
    shape = (len(layers), len(requests), -1)
    losses = torch.tensor(res.losses, device=res.delta.device)  # (steps, rows), rows layer-major
    final = losses[-1] if params.optimizer == "adam" else losses.min(dim=0).values
    return LayerChanges(delta=res.delta.reshape(shape), h0=res.h0.reshape(shape), loss=final.reshape(shape[:2]),
                        initial_loss=losses[0].reshape(shape[:2]), steps=res.steps)


def own_targets(ctx, requests: list[EditRequest], layers: list[int], params: ValueParams,
                record: dict | None = None) -> Iterator[LayerTarget]:
    """Yield each edited layer's keys K (template-averaged, as the spread's), outputs W K and its own δ_l, bottom-up.

    The caller updates layer l before the generator moves on, and δ_l is computed when layer l is
    reached, on the model as it stands after the lower layers' updates: each layer asks for what
    its own output still needs, not for a share of a z* fixed before the first update.
    `record`, when given, receives each layer's value-optimisation record under "own_delta".
    """
    for layer in sorted(layers):
        change = one_layer_changes(ctx, requests, [layer], params)
        W = ctx.spec.get_weight(ctx.model, layer).to(torch.float64)
        keys = layer_keys(ctx, requests, layer).to(W)
        if record is not None:
            record.setdefault("own_delta", {})[str(layer)] = change.diagnostics(0)
        yield LayerTarget(layer, keys, keys @ W.T, change.delta[0].to(W))
