"""The top-level run config (`base_config`: seed, sizes, protocol, telemetry, checkpoints, guard,
logging), and `register()`, which stores every schema in Hydra's ConfigStore."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from editbench.schema.groups import DatasetConfig, DownstreamConfig, ModelConfig, ScoringConfig, StatsConfig
from editbench.schema.methods import METHODS
from editbench.schema.rules import eval_protocol, ge, gt, key, one_of, optional, ratio


@dataclass
class WandbConfig:
    mode: str = key(one_of("offline", "online", "disabled"))
    project: str = key()
    group: str | None = key()


@dataclass
class GuardConfig:
    """Thresholds of the per-step checks (editbench/guard.py)."""

    enabled: bool = key()
    residual_growth: float = key(gt(0), doc="after-spread residual / before-spread residual that warns")
    residual_floor: float = key(ge(0), doc="after-spread residual below which spread_residual_grew never warns")
    value_loss_factor: float = key(gt(0), doc="final value loss / early_stop that warns")
    max_update_ratio: float = key(gt(0), doc="one step's ‖ΔW‖_F / ‖W‖_F that warns")
    min_locality: float = key(ratio(), default=0.5, doc="mean locality of a scoring below which it warns")


@dataclass
class LoggerConfig:
    wandb: WandbConfig = MISSING


@dataclass
class Config:
    method: Any = MISSING  # typed by the chosen method's own schema (METHODS)
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    downstream: DownstreamConfig = MISSING
    seed: int = key()
    data_dir: str | None = key()
    num_edits: int | None = key(optional(ge(1)))
    num_steps: int | None = key(optional(ge(1)))
    offset: int = key(ge(0))
    batch_size: int = key(ge(1))
    eval_at: Any = key(eval_protocol())
    telemetry_every: int = key(ge(0))
    telemetry_spectra: str = key(one_of("exact", "off"), default="exact",
                                 doc="exact: a float64 SVD of every edited matrix per telemetry step; off: norms only")
    debug: bool = key()
    checkpoint_every: int = key(ge(0))
    resume: str | None = key()
    threads: int | None = key(optional(ge(1)))
    stats: StatsConfig = MISSING
    scoring: ScoringConfig = MISSING
    logger: LoggerConfig = MISSING
    scale: dict[str, Any] | None = key(default=None, doc="experiment sizes (conf/scale, +experiment=...)")
    guard: GuardConfig = MISSING


GROUPS: dict[str, type] = {"model": ModelConfig, "dataset": DatasetConfig, "downstream": DownstreamConfig}


def register() -> None:
    """Store every schema in Hydra's ConfigStore: `base_config`, `<group>/base_<name>`."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for name, schema in METHODS.items():
        cs.store(group="method", name=f"base_{name}", node=schema)
    for group, schema in GROUPS.items():
        cs.store(group=group, name=f"base_{group}", node=schema)
