"""Per-step sanity checks on an editor's diagnostics: the signs of an edit that is destroying the model.

Issue 24 (Gemma3's post-feedforward norm ignored) showed three symptoms long before the scores:
the z* residual that MEMIT's spread should shrink grew layer by layer, the value optimisation
stopped converging, and single updates reached ‖ΔW‖ far beyond ‖W‖. Each step's record gets a
`warnings` list of machine-readable codes; summary.json counts each code; the console says once
per code what to check. Thresholds are the `guard:` block of conf/config.yaml.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

HINTS = {
    "spread_residual_grew": "the z* residual is larger after the spread than before it: the layer targets do not "
                            "realise the residual change (a normalised MLP output not mapped, methods.md D14?), or λ "
                            "is far too small",
    "value_loss_high": "the value optimisation (z* / v*) ended far above early_stop: more value steps, a larger "
                       "clamp_norm_factor, or an edited model that no longer responds",
    "value_loss_not_decreasing": "the value optimisation did not lower its loss at all: check the edited site and lr",
    "locality_collapsed": "most unrelated prompts changed their prediction (locality below guard.min_locality): "
                          "the edits are damaging the model; check λ, the layers and the update norms in steps.jsonl",
    "update_too_large": "an update's ‖ΔW‖_F / ‖W‖_F is out of proportion: check λ, the residual mapping and the "
                        "value targets",
}


@dataclass(frozen=True)
class GuardParams:
    enabled: bool = True
    residual_growth: float = 1.0  # after-spread ‖z* − z‖ > this × before-spread: spread_residual_grew
    # ... and above this absolute size: a z* the model already met (‖z* − z‖ ≈ 1e-5, the value
    # optimisation stopped at once) "grows" by rounding, which is no failure of the spread
    residual_floor: float = 1e-3
    value_loss_factor: float = 10.0  # final value loss > this × early_stop: value_loss_high
    max_update_ratio: float = 0.5  # ‖ΔW‖_F / ‖W‖_F of one step above this: update_too_large
    min_locality: float = 0.5  # mean locality of a scoring below this: locality_collapsed

    @classmethod
    def from_cfg(cls, cfg: Mapping | None) -> GuardParams:
        cfg = cfg or {}
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


def _dicts(node: Any) -> Iterator[Mapping]:
    """Every mapping inside a record (MOSE nests one value result per layer group under `v`)."""
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _dicts(value)


def _floats(x: Any) -> list[float]:
    return [float(v) for v in x] if isinstance(x, list | tuple) else [float(x)]


def step_warnings(record: Mapping, update_ratios: Mapping[int, float], params: GuardParams,
                  early_stop: float) -> list[dict]:
    """The warnings of one step's record (its diagnostics) and of the step's weight writes."""
    if not params.enabled:
        return []
    out: list[dict] = []
    for node in _dicts({k: v for k, v in record.items() if k != "matrices"}):
        z_res = node.get("z_residual")
        if isinstance(z_res, list) and len(z_res) >= 2:
            before, after = _floats(z_res[0]), _floats(z_res[-1])
            for r, (b, a) in enumerate(zip(before, after, strict=True)):
                if a > params.residual_growth * b and a > params.residual_floor:
                    out.append({"code": "spread_residual_grew", "request": r, "before": b, "after": a,
                                "threshold": params.residual_growth})
        final, initial = node.get("v_loss_final", node.get("loss_final")), node.get("v_loss_initial",
                                                                                    node.get("loss_initial"))
        if final is None or initial is None or not _floats(final):
            continue
        steps = int(node.get("v_steps", node.get("steps", 2)))
        for r, (f, i) in enumerate(zip(_floats(final), _floats(initial), strict=True)):
            limit = params.value_loss_factor * early_stop
            if f > limit:
                out.append({"code": "value_loss_high", "request": r, "loss": f, "threshold": limit})
            if steps > 1 and i > early_stop and f >= i:
                out.append({"code": "value_loss_not_decreasing", "request": r, "loss": f, "initial": i})
    for layer, ratio in sorted(update_ratios.items()):
        if ratio > params.max_update_ratio:
            out.append({"code": "update_too_large", "layer": int(layer), "ratio": ratio,
                        "threshold": params.max_update_ratio})
    return out


class Guard:
    """Checks every step, remembers which codes were already announced on the console."""

    def __init__(self, cfg: Mapping | None, method_cfg: Mapping) -> None:
        self.params = GuardParams.from_cfg(cfg)
        value = method_cfg.get("value") or {}
        self.early_stop = float(value.get("early_stop", method_cfg.get("early_stop", 0.05)))
        self.announced: set[str] = set()

    def check(self, step: int, record: Mapping, update_ratios: Mapping[int, float]) -> list[dict]:
        return self._announce(step, step_warnings(record, update_ratios, self.params, self.early_stop))

    def check_scores(self, step: int | str, scored: list[Mapping]) -> list[dict]:
        """locality_collapsed when the mean locality of the requests just scored is below min_locality."""
        localities = [float(r["locality"]) for r in scored if r.get("locality") is not None]
        if not self.params.enabled or not localities:
            return []
        mean = sum(localities) / len(localities)
        if mean >= self.params.min_locality:
            return []
        return self._announce(step, [{"code": "locality_collapsed", "locality": mean, "n": len(localities),
                                      "threshold": self.params.min_locality}])

    def _announce(self, step: int | str, warnings: list[dict]) -> list[dict]:
        for w in warnings:
            if w["code"] not in self.announced:
                self.announced.add(w["code"])
                log.warning("step %s: %s (%s). Check: %s. Counted in summary.json `warnings`; each step's "
                            "record in steps.jsonl lists them.", step, w["code"],
                            ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in w.items() if k != "code"), HINTS[w["code"]])
        return warnings


def count_warnings(records: list[Mapping]) -> dict[str, int]:
    """{code: occurrences} over the step records of a run (summary.json's `warnings`)."""
    counts: Counter[str] = Counter()
    for record in records:
        counts.update(w["code"] for w in record.get("warnings") or [])
    return dict(sorted(counts.items()))
