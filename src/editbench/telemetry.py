"""Numerical health of every edited matrix: norms, spectrum, condition number, drift (float64).

These numbers carry the paper's argument (Fig. 2): additive methods inflate the norm and the
condition number of the edited matrix over a sequence; MOSE's rotations leave them unchanged.
"""

from __future__ import annotations

import torch

from editbench.numerics import matrix_stats, norm_stats, singular_values, smallest_nonzero


class Telemetry:
    """Per-step statistics of the matrices an editor has touched, W0's spectrum cached.

    `spectra=False` (config telemetry_spectra=off) keeps only the norms: the float64 SVD of a
    4096×14336 matrix costs about 4·d²·m ≈ 10¹² FLOPs per edited layer and step, seconds on a GPU
    and minutes on a CPU, more than the edit itself at paper scale (experiments/paper-scale/).
    """

    @classmethod
    def from_cfg(cls, cfg, spec, model, originals: dict[int, torch.Tensor]) -> Telemetry:
        """The run's telemetry as the config asks (`telemetry_spectra`: exact | off)."""
        return cls(spec, model, originals, spectra=cfg.telemetry_spectra == "exact")

    def __init__(self, spec, model, originals: dict[int, torch.Tensor], spectra: bool = True) -> None:
        self.spec, self.model, self.originals, self.spectra = spec, model, originals, spectra
        self._sv0: dict[int, torch.Tensor] = {}
        self._last: dict[int, tuple[torch.Tensor, dict]] = {}  # the matrix last measured, its stats

    def __call__(self, layers: list[int] | None = None) -> dict[str, dict]:
        layers = sorted(self.originals) if layers is None else layers
        out = {}
        for layer in layers:
            W0 = self.originals[layer]
            if not self.spectra:
                out[str(layer)] = norm_stats(self.spec.get_weight(self.model, layer), W0)
                continue
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
