"""Checking a composed config against the schemas: `validate` (one ConfigError naming every bad key,
and the warnings), what resume asks (`added_later`), and one key read through its schema (`setting`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass
from functools import cache
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from editbench.errors import ConfigError
from editbench.schema import CONF_DIR
from editbench.schema.methods import METHODS
from editbench.schema.rules import is_number
from editbench.schema.run import Config


def _plain(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig):
        try:
            return OmegaConf.to_container(cfg, resolve=True)
        except Exception as err:  # an interpolation that does not resolve
            raise ConfigError(f"the config cannot be resolved: {err}") from err
    return cfg


def _walk(schema: type, node: Any, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, value, dataclass field) for every field of `schema` that `node` holds."""
    if not isinstance(node, Mapping):
        return
    for f in fields(schema):
        if f.name not in node:
            continue
        value, path = node[f.name], f"{prefix}{f.name}"
        sub = METHODS.get(str(node[f.name].get("name"))) if f.name == "method" and isinstance(value, Mapping) else None
        sub = sub or (f.type if isinstance(f.type, type) and is_dataclass(f.type) else _dataclass_named(f.type, schema))
        if sub is not None:
            yield from _walk(sub, value, f"{path}.")
        else:
            yield path, value, f


def _dataclass_named(annotation: Any, owner: type) -> type | None:
    """The dataclass an annotation of `owner`'s names (annotations are strings under `from __future__ import
    annotations`, resolved where `owner` is defined, as Python resolves them)."""
    if isinstance(annotation, str):
        found = vars(sys.modules[owner.__module__]).get(annotation)
        return found if isinstance(found, type) and is_dataclass(found) else None
    return None


def added_later(cfg: Any, path: str) -> bool:
    """Whether key `path` of `cfg` changes nothing when a config saved before the key existed lacks it:
    a descriptive key, or one at the schema's own default (keys added with a default, e.g. method.rotation)."""
    for where, value, f in _walk(Config, _plain(cfg), ""):
        if where == path:
            return f.metadata.get("descriptive") or (f.default is not MISSING and value == f.default)
    return False


def model_layers(cfg: Any) -> int | None:
    """The model's layer count as its config knows it before loading (model.n_layers or model.tiny.n_layers)."""
    model = _plain(cfg).get("model") or {}
    n = model.get("n_layers") or (model.get("tiny") or {}).get("n_layers")
    return int(n) if isinstance(n, int) and n > 0 else None


@cache
def recorded_values(method: str, name: str) -> tuple[float, ...]:
    """Every value of method.<name> in conf/method/<method>.yaml and conf/method_model/<method>_<model>.yaml."""
    models = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    files = [CONF_DIR / "method" / f"{method}.yaml", *(CONF_DIR / "method_model" / f"{method}_{m}.yaml" for m in models)]
    values = [OmegaConf.load(p).get(name) for p in files if p.is_file()]
    return tuple(float(v) for v in values if is_number(v))


def out_of_range(path: str, value: Any, f: Any, n_layers: int | None = None) -> str | None:
    """The error for `path=value` when schema field `f`'s rule refuses it (None when allowed or unruled)."""
    rule = f.metadata.get("rule")
    if rule is None or rule.ok(value, n_layers):
        return None
    text = rule.text.replace("n_layers-1", str(n_layers - 1)) if n_layers else rule.text
    doc = f" ({f.metadata['doc']})" if f.metadata.get("doc") else ""
    return f"{path}={value!r} is out of range: must be {text}{doc}"


def validate(cfg: Any, n_layers: int | None = None) -> list[str]:
    """Check every value rule of the composed config; return the warnings.

    Raises one ConfigError that lists each bad key with its value and the allowed range.
    `n_layers` (else the model config's own count, if it has one) bounds layer indices.
    """
    plain = _plain(cfg)
    n_layers = n_layers or model_layers(plain)
    method = str((plain.get("method") or {}).get("name"))
    errors, warnings = [], []
    for path, value, f in _walk(Config, plain, ""):
        warn = f.metadata.get("warn")
        if error := out_of_range(path, value, f, n_layers):
            errors.append(error)
        elif warn is not None:
            message = warn.says(value, path, list(recorded_values(method, f.name)))
            if message:
                warnings.append(message)
    if errors:
        raise ConfigError("; ".join(errors) + " (see conf/ and /work/shared/docs/methods.md for each key)"
                          if len(errors) > 1 else errors[0])
    return warnings


def setting(schema: type, cfg: Any, name: str, group: str = "method") -> Any:
    """`cfg.<name>` checked by its schema field's rule, or the field's default where `cfg` lacks the key.

    For editors, which may be built from a bare method config (tests, the Python API) that `validate` never
    saw: the allowed values and the default exist once, in the schema."""
    f = next((f for f in fields(schema) if f.name == name), None)
    if f is None:
        raise KeyError(f"{schema.__name__} has no key {name!r}")
    value = cfg.get(name, MISSING) if hasattr(cfg, "get") else getattr(cfg, name, MISSING)
    if value is MISSING:
        if f.default is MISSING:
            raise ConfigError(f"{group}.{name} is missing; set it in the config (see conf/{group}/)")
        value = f.default
    if error := out_of_range(f"{group}.{name}", value, f):
        raise ConfigError(error)
    return value
