"""What a schema field says besides its type: its value rule, an optional warning, its doc.

Value rules live next to each field as metadata (`key(gt(0))`); schema/check.py's `validate(cfg)`
applies them. Adding a key is one line: `new_key: float = key(ge(0), doc="what it is")`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass(frozen=True)
class Rule:
    """A predicate on a (resolved, plain) value, and the allowed range said in words."""

    ok: Callable[[Any, int | None], bool]  # (value, n_layers or None) -> allowed
    text: str


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)


def gt(bound: float) -> Rule:
    return Rule(lambda v, _: is_number(v) and v > bound, f"> {bound}")


def ge(bound: float) -> Rule:
    return Rule(lambda v, _: is_number(v) and v >= bound, f">= {bound}")


def real() -> Rule:
    return Rule(lambda v, _: is_number(v), "a number (not nan)")


def ratio() -> Rule:
    return Rule(lambda v, _: is_number(v) and 0 < v <= 1, "in (0, 1]")


def one_of(*choices: str) -> Rule:
    return Rule(lambda v, _: v in choices, "one of " + ", ".join(choices))


def _in_model(layer: Any, n_layers: int | None) -> bool:
    return isinstance(layer, int) and layer >= 0 and (n_layers is None or layer < n_layers)


def layer() -> Rule:
    return Rule(_in_model, "a layer index in 0..n_layers-1")


def layers(count: int | None = None) -> Rule:
    return Rule(lambda v, n: bool(v) and count in (None, len(v)) and all(_in_model(x, n) for x in v),
                f"a list of {count or 'one or more'} layer indices in 0..n_layers-1")


def pairs() -> Rule:
    return Rule(lambda v, _: bool(v) and all(len(p) == 2 and min(p) >= 1 for p in v),
                "a non-empty list of [length, count] pairs, each >= 1")


def eval_protocol() -> Rule:
    def ok(v: Any, _: int | None) -> bool:
        if isinstance(v, list):
            return bool(v) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v)
        return v in ("final", "immediate")

    return Rule(ok, "final, immediate or a non-empty list of steps >= 1 like [10,50]")


def optional(rule: Rule) -> Rule:
    return Rule(lambda v, n: v is None or rule.ok(v, n), f"null or {rule.text}")


@dataclass(frozen=True)
class Warn:
    """A legal value that is probably a mistake: (value, key, recorded values) -> message or None."""

    says: Callable[[Any, str, list[float]], str | None]


def warn_below(bound: float, why: str) -> Warn:
    return Warn(lambda v, k, _: f"{k}={v} is below {bound}: {why}" if is_number(v) and v < bound else None)


def warn_far_from_recorded(factor: float = 100.0) -> Warn:
    """λ more than `factor` times away from every value conf/ records for the method."""

    def says(v: Any, k: str, recorded: list[float]) -> str | None:
        if not is_number(v) or v <= 0 or not recorded or any(r / factor <= v <= r * factor for r in recorded if r > 0):
            return None
        return (f"{k}={v:g} is more than {factor:g}x away from every value recorded in conf/ for this method "
                f"({', '.join(f'{r:g}' for r in sorted(set(recorded)))}); tune it on the train split (D5)")

    return Warn(says)


def key(rule: Rule | None = None, *, warn: Warn | None = None, default: Any = MISSING, doc: str = "",
        descriptive: bool = False) -> Any:
    """A schema field: its rule, an optional warning, and (only where the YAML may lack it) a default.

    `descriptive`: the key describes something and changes no result (resume ignores it when added later).
    """
    return field(default=default, metadata={"rule": rule, "warn": warn, "doc": doc, "descriptive": descriptive})
