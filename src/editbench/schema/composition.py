"""Hydra's and OmegaConf's composition errors (a wrong type, an unknown key or option) in one line."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import Any


def composition_message(err: BaseException) -> str | None:
    """One line for a config error Hydra or OmegaConf raised while composing; None for any other error."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else err
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        expected = _expected_type(cause)
        if expected and "convert" in str(cause.msg or ""):
            return f"{cause.full_key}={cause.value!r} is not {expected}"
        return f"{cause.full_key}: {(cause.msg or str(cause)).splitlines()[0]}"
    if isinstance(err, HydraException | OmegaConfBaseException):
        text = " ".join(str(err).split()).split(" Config search path")[0]
        return re.sub(r" base_\w+", "", text)  # the schemas are not options to choose
    return None


def _expected_type(err: Any) -> str | None:
    """'a float', 'an int', ... from the schema field the failed key names."""
    owner, name = getattr(err, "object_type", None), str(getattr(err, "key", "") or "")
    if owner is None or not is_dataclass(owner):
        return None
    words = {"float": "a float", "int": "an int", "bool": "a bool (true/false)", "str": "a string",
             "list[int]": "a list of ints", "list[str]": "a list of strings",
             "list[list[int]]": "a list of [int, int] pairs", "dict[str, Any]": "a mapping"}
    for f in fields(owner):
        if f.name == name:
            kind = str(f.type).removesuffix(" | None")
            said = words.get(kind, f"of type {kind}")
            return said + (" or null" if kind != str(f.type) else "")
    return None
