"""The Editor protocol and the registry that maps `method=<name>` to a class.

The registry is filled by the method modules themselves (`@register`); editbench/methods.py lists
and imports them, and builds editors by name, so this module imports no method.

An editor changes weights in place and returns diagnostics; it never scores. Every write goes
through `write_weight`, which keeps each matrix's original (for telemetry, MOSE's Q·W0 and
PRUNE's ΔW) and refuses non-finite updates (the weights then stay as they were).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch

from editbench.data.records import EditRequest
from editbench.errors import NumericalError
from editbench.locate.context import EditContext
from editbench.numerics import checked_update_ratio

log = logging.getLogger(__name__)

REGISTRY: dict[str, type[Editor]] = {}


def register(name: str):
    """Class decorator: make an editor available as `method=<name>`."""

    def wrap(cls):
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return wrap


class Editor:
    name: ClassVar[str] = "base"

    def __init__(self, ctx: EditContext, cfg: Any) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.on_nonfinite = cfg.get("on_nonfinite", "skip") if hasattr(cfg, "get") else "skip"
        self.rejected: list[int] = []  # layers whose update the non-finite guard refused, since last taken
        self.update_ratios: dict[int, float] = {}  # largest ‖ΔW‖_F / ‖W‖_F per layer since last taken

    # --- the protocol -------------------------------------------------------------------
    def edit(self, requests: list[EditRequest]) -> dict:
        """Apply one step (a batch of requests) in place; return diagnostics incl. `layers`."""
        raise NotImplementedError

    def finalize(self) -> dict:
        """Post-hoc work after the last step (PRUNE); diagnostics."""
        return {}

    def stat_layers(self) -> list[int]:
        """Layers whose C0 this editor will need (computed together in one pass up front)."""
        return []

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass

    def take_rejected(self) -> list[int]:
        """Layers refused by the non-finite guard since the last call (the runner logs the step as failed)."""
        out, self.rejected = self.rejected, []
        return out

    def take_update_ratios(self) -> dict[int, float]:
        """‖W_new − W_old‖_F / ‖W_old‖_F of every write since the last call (largest per layer), for the guard."""
        out, self.update_ratios = self.update_ratios, {}
        return out

    # --- shared helpers -----------------------------------------------------------------
    def weight(self, layer: int) -> torch.Tensor:
        """The edited matrix as it stands, (d, m) in float64."""
        return self.ctx.spec.get_weight(self.ctx.model, layer).to(torch.float64)

    def original(self, layer: int) -> torch.Tensor:
        """The matrix before its first edit, (d, m) in float64."""
        if layer not in self.ctx.originals:
            self.ctx.originals[layer] = self.ctx.spec.get_weight(self.ctx.model, layer).clone()
        return self.ctx.originals[layer].to(torch.float64)

    def write_weight(self, layer: int, new: torch.Tensor, *, since: torch.Tensor | None = None,
                     record: bool = True) -> bool:
        """Set layer's matrix to `new` unless it (or its cast to the model dtype) is non-finite.

        The update ratio ‖new − since‖_F / ‖since‖_F goes to the guard (`since`: the matrix as it stands
        unless the caller measures its step from elsewhere); `record=False` for a write that is not an
        update of the step (mose_oft's reset to W0 before it trains).
        """
        self.original(layer)
        current = self.ctx.spec.get_weight(self.ctx.model, layer)
        ratio = checked_update_ratio(new, current if since is None else since, current.dtype)
        if ratio is None:
            msg = f"{self.name}: non-finite update for layer {layer} rejected; weights unchanged"
            if self.on_nonfinite == "abort":
                raise NumericalError(msg + " (on_nonfinite=abort)")
            log.warning(msg)
            self.rejected.append(layer)
            return False
        if record:
            self.update_ratios[layer] = max(ratio, self.update_ratios.get(layer, 0.0))
        self.ctx.spec.set_weight(self.ctx.model, layer, new)
        return True
