"""The dataset config keys the loader reads (`editbench/conf/dataset/*.yaml`), checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from editbench.errors import ConfigError

FORMATS = ("easyedit", "rome", "zsre", "conceptedit")
ZSRE_CONVENTIONS = ("easyedit", "memit")
SELECTIONS = ("first", "random")
ON_BAD_RECORD = ("error", "skip")


@dataclass(frozen=True)
class DatasetSpec:
    """The dataset config keys the loader reads, checked once."""

    name: str
    format: str
    file: str
    selection: str
    on_bad_record: str
    convention: str
    rome_file: str | None


def _plain_config(dataset_cfg: Mapping) -> dict:
    """The dataset group as a plain dict with interpolations (e.g. `${.split}`) resolved."""
    if not isinstance(dataset_cfg, Mapping | DictConfig):
        raise ConfigError(f"dataset config must be a mapping, got {type(dataset_cfg).__name__}")
    try:
        node = dataset_cfg if isinstance(dataset_cfg, DictConfig) else OmegaConf.create(dict(dataset_cfg))
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"dataset config cannot be resolved: {err}") from err


def _choice(cfg: dict, key: str, valid: tuple[str, ...], default: str) -> str:
    value = cfg.get(key) or default
    if value not in valid:
        raise ConfigError(f"dataset.{key}={value!r} is not one of: {', '.join(valid)}")
    return value


def dataset_spec(dataset_cfg: Mapping) -> DatasetSpec:
    """The dataset group's keys, checked: one ConfigError naming a missing key or a value not allowed."""
    cfg = _plain_config(dataset_cfg)
    for key in ("name", "format", "file"):
        if not cfg.get(key):
            raise ConfigError(f"dataset config lacks '{key}' (see editbench/conf/dataset/*.yaml for examples)")
    return DatasetSpec(
        name=str(cfg["name"]),
        format=_choice(cfg, "format", FORMATS, ""),
        file=str(cfg["file"]),
        selection=_choice(cfg, "selection", SELECTIONS, "first"),
        on_bad_record=_choice(cfg, "on_bad_record", ON_BAD_RECORD, "error"),
        convention=_choice(cfg, "convention", ZSRE_CONVENTIONS, "easyedit"),
        rome_file=str(cfg["rome_file"]) if cfg.get("rome_file") else None,
    )
