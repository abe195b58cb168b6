"""The construction steps a run needs, in one place below both the runner and the Python API.

`editbench.runner` (the command line's loop), `editbench.api` (a session on a model kept in memory)
and `editbench.posthoc` build the same objects from one composed config with these functions, so
a session and a CLI run with the same config edit the same weights. Nothing here imports the
runner or the API.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from editbench.data.records import EditRequest
from editbench.editors.base import Editor
from editbench.errors import ConfigError
from editbench.locate.context import EditContext
from editbench.locate.stats import SecondMoments, StatsParams
from editbench.locate.templates import generate_context_templates
from editbench.methods import build_editor
from editbench.models.loading import LoadedModel
from editbench.schema.check import validate
from editbench.scoring import Scorer

SUMMARY_METRICS = ("reliability", "generalization", "locality", "es", "ps", "ns")

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plan_steps(cfg: DictConfig) -> tuple[int, int]:
    """(batch_size, num_steps): num_steps defaults to ceil(num_edits / batch_size)."""
    batch_size = int(cfg.batch_size)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if cfg.get("num_steps"):
        return batch_size, int(cfg.num_steps)
    if not cfg.num_edits or int(cfg.num_edits) < 1:
        raise ConfigError("set num_edits=<n> (or num_steps=<t> with batch_size=<n>)")
    return batch_size, math.ceil(int(cfg.num_edits) / batch_size)


def config_warnings(cfg: DictConfig) -> list[str]:
    """The schema's value rules (editbench/schema/): one ConfigError, or the warnings, logged once."""
    warnings = validate(cfg)
    for warning in warnings:
        log.warning("config: %s", warning)
    return warnings


def check_loaded(cfg: DictConfig, lm: LoadedModel) -> None:
    """Layer keys against the loaded model's depth, before any edit (model.n_layers, when set, must match)."""
    declared = cfg.model.get("n_layers")
    if declared and int(declared) != lm.spec.n_layers:
        raise ConfigError(f"model.n_layers={declared} but {lm.name} has {lm.spec.n_layers} layers; fix conf/model/")
    validate(cfg, n_layers=lm.spec.n_layers)


def summarize(records: list[dict]) -> dict:
    """The mean of each metric over the scored records (missing values left out), as in summary.json."""
    df = pd.DataFrame(records)
    return {m: float(df[m].dropna().mean()) for m in SUMMARY_METRICS if m in df and df[m].notna().any()}


def context_templates(cfg: DictConfig, lm: LoadedModel) -> list[list[str]]:
    """The method's context-template groups, sampled from the model as it stands (seeded)."""
    groups = generate_context_templates(lm.model, lm.tokenizer, [list(p) for p in cfg.method.templates.length_params],
                                        seed=int(cfg.seed))
    if cfg.method.templates.get("grouping", "memit") == "flat":  # ROME: one plain mean over all templates
        groups = [[t for g in groups for t in g]]
    return groups


def second_moments(cfg: DictConfig, lm: LoadedModel, data_dir: Path) -> SecondMoments:
    """The lazily computed, cached C0 statistics for this model and `cfg.stats`."""
    return SecondMoments(lm.model, lm.tokenizer, lm.spec, lm.fingerprint, StatsParams.from_cfg(cfg.stats), data_dir)


def build_method(cfg: DictConfig, lm: LoadedModel, stats: SecondMoments, groups: list[list[str]],
                 originals: dict[int, torch.Tensor] | None = None) -> Editor:
    """The editor `cfg.method` names, on an EditContext, with the C0 it needs computed up front.

    `originals` lets several editors on one model share each matrix's pre-edit copy.
    """
    ctx = EditContext(lm.model, lm.tokenizer, lm.spec, groups, stats)
    if originals is not None:
        ctx.originals = originals
    editor = build_editor(cfg.method.name, ctx, cfg.method)
    if editor.stat_layers():  # computed together in one pass, read by the editor when it needs each
        stats.prepare(editor.stat_layers())
    return editor


def make_scorer(cfg: DictConfig, lm: LoadedModel, requests: list[EditRequest]) -> Scorer:
    """A Scorer under the dataset's convention; it snapshots the pre-edit predictions of `requests`."""
    locality = "gold" if cfg.dataset.get("scorer", "easyedit") == "memit" else "agreement"
    return Scorer(lm.model, lm.tokenizer, requests, locality=locality, batch_size=int(cfg.scoring.batch_size))
