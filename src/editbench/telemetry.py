"""Numerical health of every edited matrix: norms, spectrum, condition number, drift (float64).

These numbers carry the paper's argument (Fig. 2): additive methods inflate the norm and the
condition number of the edited matrix over a sequence; MOSE's rotations leave them unchanged.
"""

from __future__ import annotations

import torch

from editbench.numerics import matrix_stats, singular_values, smallest_nonzero


class Telemetry:
    """Per-step statistics of the matrices an editor has touched, W0's spectrum cached."""

    def __init__(self, spec, model, originals: dict[int, torch.Tensor]) -> None:
        self.spec, self.model, self.originals = spec, model, originals
        self._sv0: dict[int, torch.Tensor] = {}
        self._last: dict[int, tuple[torch.Tensor, dict]] = {}  # the matrix last measured, its stats

    def __call__(self, layers: list[int] | None = None) -> dict[str, dict]:
        layers = sorted(self.originals) if layers is None else layers
        out = {}
        for layer in layers:
            W0 = self.originals[layer]
            if layer not in self._sv0:
                self._sv0[layer] = singular_values(W0)
            W = self.spec.get_weight(self.model, layer)
            last = self._last.get(layer)
            if last is not None and torch.equal(last[0], W):  # untouched since: an SVD saved
                out[str(layer)] = last[1]
                continue
            sv0 = self._sv0[layer]
            out[str(layer)] = {**matrix_stats(W, W0, sv0), "fro0": float(sv0.norm()),
                               "cond0": float(sv0[0]) / smallest_nonzero(sv0, tuple(W0.shape))}
            self._last[layer] = (W.detach().clone(), out[str(layer)])
        return out
