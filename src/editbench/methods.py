"""Every editing method in one list, and `build_editor`, which turns `method=<name>` into an editor.

Each module below defines one Editor class and registers it with `@register` (editors/base.py) when
it is imported. The base module imports none of them: this module sits above the base and every
method, so the registry fills without an import circle. A new method is one file with a registered
Editor plus one line in `METHOD_MODULES`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from baselines import alphaedit, emmet, memit, prune, rect, rome
from editbench.editors import ft, mose, mose_oft
from editbench.editors.base import REGISTRY, Editor
from editbench.errors import ConfigError
from editbench.locate.context import EditContext

# MOSE (both forms), the fine-tuning reference, then the baselines; importing them registered them.
METHOD_MODULES: tuple[ModuleType, ...] = (mose, mose_oft, ft, rome, memit, emmet, rect, prune, alphaedit)


def method_names() -> list[str]:
    """The `method=` values available."""
    return sorted(REGISTRY)


def build_editor(name: str, ctx: EditContext, cfg: Any) -> Editor:
    """The registered editor `name` on `ctx`, configured by `cfg` (the composed `method` group)."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown method {name!r}; choose one of {method_names()} (method=<name>)")
    return REGISTRY[name](ctx, cfg)
