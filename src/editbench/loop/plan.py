"""What a run will do: its steps and when they are scored (:class:`Plan`), and the cell it runs on,
built in a fixed order from the config (:func:`prepare`: data, model, templates, C0, editor, scorer)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from editbench import checkpoint
from editbench.build import (
    build_method,
    check_loaded,
    config_warnings,
    context_templates,
    make_scorer,
    plan_steps,
    second_moments,
    seed_everything,
)
from editbench.data import load_requests, resolve_data_dir
from editbench.data.records import EditRequest
from editbench.editors.base import Editor
from editbench.errors import ConfigError
from editbench.models.loading import LoadedModel, load_model
from editbench.scoring import Scorer

log = logging.getLogger(__name__)


def eval_steps(eval_at: Any, num_steps: int) -> tuple[str, set[int]]:
    """(protocol name, steps after which all edits so far are scored). Steps count from 1."""
    if eval_at == "final":
        return "final", {num_steps}
    if eval_at == "immediate":
        return "immediate", set()
    if isinstance(eval_at, list | tuple) or OmegaConf.is_list(eval_at):
        steps = {int(s) for s in eval_at}
        bad = [s for s in steps if not 1 <= s <= num_steps]
        if bad:
            raise ConfigError(f"eval_at lists steps {sorted(bad)} outside 1..{num_steps}; use steps within the run")
        return "checkpoints", steps | {num_steps}
    raise ConfigError(f"eval_at={eval_at!r} is not valid; use final, immediate or a list of steps like [10,50]")


@dataclass(frozen=True)
class Plan:
    """The steps of a run and the protocol that scores them (methods.md D10)."""

    batch_size: int
    num_steps: int
    protocol: str  # final | immediate | checkpoints
    score_at: set[int]  # the steps after which every edit so far is scored

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> Plan:
        batch_size, num_steps = plan_steps(cfg)
        return cls(batch_size, num_steps, *eval_steps(cfg.eval_at, num_steps))

    def batch(self, requests: list[EditRequest], step: int) -> list[EditRequest]:
        return requests[(step - 1) * self.batch_size : step * self.batch_size]


@dataclass
class Cell:
    """One (method, model, dataset, seed) cell, ready to edit: what every later part reads."""

    cfg: DictConfig
    plan: Plan
    data_dir: Path
    requests: list[EditRequest]
    lm: LoadedModel
    editor: Editor
    scorer: Scorer
    meta: dict  # the fields every record of the run starts with
    config_warnings: list[str]
    pre_seconds: float


def prepare(cfg: DictConfig, run_dir: Path) -> Cell:
    """Check the config, seed, load the requests and the model, and build the editor and the scorer
    (which snapshots the pre-edit predictions). The order is fixed: it decides the seeded draws."""
    cfg_warnings = config_warnings(cfg)  # every value rule, before anything is written or loaded
    checkpoint.check_config(run_dir, cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    seed_everything(int(cfg.seed))
    plan = Plan.from_cfg(cfg)

    data_dir = resolve_data_dir(cfg.get("data_dir"))
    requests = load_requests(cfg.dataset, data_dir, num_edits=plan.batch_size * plan.num_steps,
                             offset=int(cfg.offset), seed=int(cfg.seed))
    lm = load_model(cfg.model)
    log.info("model %s (%s) loaded in %.1f s", lm.name, lm.source, lm.load_seconds)
    check_loaded(cfg, lm)

    groups = run_context_templates(cfg, lm, run_dir)
    stats = second_moments(cfg, lm, data_dir)
    editor = build_method(cfg, lm, stats, groups)
    t0 = time.perf_counter()
    scorer = make_scorer(cfg, lm, requests)
    pre_seconds = time.perf_counter() - t0
    meta = {"protocol": plan.protocol, "batch_size": plan.batch_size, "num_steps": plan.num_steps,
            "scorer": f"token_tf/{scorer.locality}", "dataset": cfg.dataset.get("label", cfg.dataset.name),
            "method": cfg.method.name, "model": lm.name, "seed": int(cfg.seed)}
    return Cell(cfg, plan, data_dir, requests, lm, editor, scorer, meta, cfg_warnings, pre_seconds)


def run_context_templates(cfg: DictConfig, lm: LoadedModel, run_dir: Path) -> list[list[str]]:
    """The context-template groups, sampled once per run and kept in the run dir (resume reads them)."""
    path = run_dir / "context_templates.json"
    if cfg.get("resume") and path.is_file():
        return json.loads(path.read_text())
    groups = context_templates(cfg, lm)
    path.write_text(json.dumps(groups, indent=1))
    return groups
