"""The one editing loop: every method runs through it, sequential or batch-sequential.

    load model, requests ─► pre-edit predictions ─► for each step: editor.edit(batch)
        ─► telemetry of every edited matrix ─► (scoring at eval_at) ─► JSONL sinks, W&B, console

The runner never knows which method it drives; an editor never scores.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from editbench.data import load_requests, resolve_data_dir
from editbench.data.records import EditRequest
from editbench.editors.base import build_editor
from editbench.errors import ConfigError
from editbench.locate.context import EditContext
from editbench.locate.stats import SecondMoments, StatsParams
from editbench.locate.templates import generate_context_templates
from editbench.models import load_model
from editbench.scoring import Scorer
from editbench.sinks import JsonlSink, WandbSink, write_json
from editbench.telemetry import Telemetry

log = logging.getLogger(__name__)

SUMMARY_METRICS = ("reliability", "generalization", "locality", "es", "ps", "ns")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def summarize(records: list[dict]) -> dict:
    df = pd.DataFrame(records)
    return {m: float(df[m].dropna().mean()) for m in SUMMARY_METRICS if m in df and df[m].notna().any()}


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Run one (method, model, dataset) cell and return its summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    seed_everything(int(cfg.seed))
    batch_size, num_steps = plan_steps(cfg)
    protocol, score_at = eval_steps(cfg.eval_at, num_steps)

    data_dir = resolve_data_dir(cfg.get("data_dir"))
    requests = load_requests(cfg.dataset, data_dir, num_edits=batch_size * num_steps,
                             offset=int(cfg.offset), seed=int(cfg.seed))
    lm = load_model(cfg.model)
    log.info("model %s (%s) loaded in %.1f s", lm.name, lm.source, lm.load_seconds)

    groups = generate_context_templates(lm.model, lm.tokenizer, [list(p) for p in cfg.method.templates.length_params],
                                        seed=int(cfg.seed))
    if cfg.method.templates.get("grouping", "memit") == "flat":  # ROME: one plain mean over all templates
        groups = [[t for g in groups for t in g]]
    (run_dir / "context_templates.json").write_text(json.dumps(groups, indent=1))
    stats = SecondMoments(lm.model, lm.tokenizer, lm.spec, lm.fingerprint, StatsParams.from_cfg(cfg.stats), data_dir)
    ctx = EditContext(lm.model, lm.tokenizer, lm.spec, groups, stats)
    editor = build_editor(cfg.method.name, ctx, cfg.method)
    if editor.stat_layers():
        stats.get(editor.stat_layers())

    scorer_name = cfg.dataset.get("scorer", "easyedit")
    locality = "gold" if scorer_name == "memit" else "agreement"
    t0 = time.perf_counter()
    scorer = Scorer(lm.model, lm.tokenizer, requests, locality=locality, batch_size=int(cfg.scoring.batch_size))
    pre_seconds = time.perf_counter() - t0
    meta = {"protocol": protocol, "batch_size": batch_size, "num_steps": num_steps,
            "scorer": f"token_tf/{locality}", "dataset": cfg.dataset.get("label", cfg.dataset.name),
            "method": cfg.method.name, "model": lm.name, "seed": int(cfg.seed)}

    steps_sink, edits_sink = JsonlSink(run_dir / "steps.jsonl"), JsonlSink(run_dir / "edits.jsonl")
    downstream = Downstream(cfg.get("downstream"), lm, data_dir, int(cfg.seed), run_dir, meta)
    wandb = WandbSink(cfg.logger.wandb, run_dir, OmegaConf.to_container(cfg, resolve=True),
                      name=f"{cfg.method.name}-{lm.name}-{cfg.dataset.name}-s{cfg.seed}")
    telemetry = Telemetry(lm.spec, lm.model, ctx.originals)
    every = max(int(cfg.telemetry_every), 1)
    final_records: list[dict] = []
    try:
        downstream.maybe(0, num_steps, wandb)  # pre-edit baseline, before the first edit
        for step in tqdm(range(1, num_steps + 1), desc=f"{cfg.method.name} edits", unit="step"):
            batch = requests[(step - 1) * batch_size : step * batch_size]
            t_edit = time.perf_counter()
            diag = editor.edit(batch)
            edit_seconds = time.perf_counter() - t_edit
            record = {"step": step, "case_ids": [r.case_id for r in batch], "edit_seconds": edit_seconds, **diag}
            if step % every == 0 or step == num_steps:
                t_tel = time.perf_counter()
                record["matrices"] = telemetry()
                record["telemetry_seconds"] = time.perf_counter() - t_tel
            steps_sink.write({**meta, **record})
            wandb.log({k: v for k, v in record.items() if k in ("edit_seconds", "matrices")}, step=step)
            if protocol == "immediate":
                final_records += _score(scorer, batch, step, step, meta, edits_sink)
            if step in score_at and step != num_steps:
                _score(scorer, requests[: step * batch_size], step, None, meta, edits_sink)
            if step != num_steps:
                downstream.maybe(step, num_steps, wandb)
        finalize_diag = editor.finalize()
        if finalize_diag:
            steps_sink.write({**meta, "step": "finalize", **finalize_diag, "matrices": telemetry()})
        downstream.maybe(num_steps, num_steps, wandb)  # after the last step (and PRUNE's finalize)
        if protocol != "immediate":
            final_records = _score(scorer, requests, num_steps, None, meta, edits_sink)
    finally:
        steps_sink.close()
        edits_sink.close()
        downstream.close()

    summary = {**meta, "n": len(final_records), **summarize(final_records), "downstream": downstream.last,
               "pre": summarize(list(scorer.pre_scores.values())),
               "model_source": lm.source, "load_seconds": lm.load_seconds, "pre_scoring_seconds": pre_seconds}
    write_json(run_dir / "summary.json", summary)
    wandb.table("edits", final_records)
    wandb.summary(summary)
    wandb.finish()
    print_summary(summary)
    return summary


class Downstream:
    """General abilities (evaluation/) before the first edit, every k steps and after the last.

    Each evaluation appends one record per task to downstream.jsonl with the absolute score and
    its ratio to the pre-edit score (the paper's "retains 95.73%").
    """

    def __init__(self, cfg: Any, lm: Any, data_dir: Path, seed: int, run_dir: Path, meta: dict) -> None:
        self.cfg, self.lm, self.data_dir, self.seed, self.meta = cfg, lm, data_dir, seed, meta
        self.enabled = bool(cfg and cfg.get("tasks"))
        self.sink = JsonlSink(run_dir / "downstream.jsonl") if self.enabled else None
        self.baseline: dict | None = None
        self.last: dict = {}

    def maybe(self, step: int, num_steps: int, wandb: WandbSink) -> None:
        every = int(self.cfg.get("every_k_steps") or 0) if self.enabled else 0
        if not self.enabled or not (step in (0, num_steps) or (every and step % every == 0)):
            return
        from evaluation.downstream import evaluate_downstream, retention

        scores = evaluate_downstream(
            self.lm.model, self.lm.tokenizer, self.data_dir, list(self.cfg.tasks), self.cfg.get("n_examples"),
            batch_size=int(self.cfg.get("batch_size", 8)), max_length=int(self.cfg.get("max_length", 1024)),
            seed=self.seed, chat_template=bool(self.cfg.get("chat_template", False)))
        if self.baseline is None:
            self.baseline = scores
        ratios = retention(scores, self.baseline)
        for task, result in scores.items():
            self.sink.write({**self.meta, "step": step, "task": task, **result, "retention": ratios.get(task)})
        numeric = {t: {k: v for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
                   for t, r in scores.items()}
        wandb.log({"downstream": numeric, "retention": ratios}, step=step)
        self.last = {"step": step, **{t: r["score"] for t, r in scores.items()},
                     **{f"{t}_retention": v for t, v in ratios.items()}}

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


def _score(scorer: Scorer, requests: list[EditRequest], eval_step: int, edit_step: int | None,
           meta: dict, sink: JsonlSink) -> list[dict]:
    records = []
    for i, rec in enumerate(scorer.score(requests)):
        step_edited = edit_step if edit_step is not None else i // meta["batch_size"] + 1
        full = {**meta, "n": len(requests), "eval_step": eval_step, "edit_step": step_edited, **rec}
        sink.write(full)
        records.append(full)
    return records


def print_summary(summary: dict) -> None:
    rows = {"pre-edit": summary.get("pre", {}),
            f"{summary['method']} ({summary['protocol']})": {m: summary.get(m) for m in SUMMARY_METRICS}}
    df = pd.DataFrame(rows).T.dropna(axis=1, how="all")
    print(f"\n{summary['model']} · {summary['dataset']} · n={summary['n']} · scorer {summary['scorer']}")
    print((df * 100).round(2).to_string())
