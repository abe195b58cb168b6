"""The one editing loop: every method runs through it, sequential or batch-sequential.

    load model, requests ─► pre-edit predictions ─► for each step: editor.edit(batch)
        ─► telemetry of every edited matrix ─► (scoring at eval_at) ─► JSONL sinks, W&B, console

The runner never knows which method it drives; an editor never scores.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from editbench import checkpoint
from editbench.build import (
    SUMMARY_METRICS,
    build_method,
    check_loaded,
    config_warnings,
    context_templates,
    make_scorer,
    plan_steps,
    second_moments,
    seed_everything,
    summarize,
)
from editbench.cache import cache_root
from editbench.data import load_requests, resolve_data_dir
from editbench.data.records import EditRequest
from editbench.demo import is_demo_dir
from editbench.errors import ConfigError
from editbench.guard import Guard, count_warnings
from editbench.io import read_jsonl, write_json
from editbench.models.loading import load_model
from editbench.scoring import Scorer
from editbench.sinks import JsonlSink, WandbSink
from editbench.telemetry import Telemetry
from editbench.timing import clock, take

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


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Run one (method, model, dataset) cell and return its summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resuming = bool(cfg.get("resume"))
    if resuming and (run_dir / "summary.json").is_file():
        log.info("%s already finished; nothing to resume", run_dir)
        return json.loads((run_dir / "summary.json").read_text())
    if not resuming and read_jsonl(run_dir / "steps.jsonl"):
        raise ConfigError(f"{run_dir} already holds a run's results; continue it with resume={run_dir}, "
                          "or give this run its own hydra.run.dir")
    cfg_warnings = config_warnings(cfg)  # every value rule, before anything is written or loaded
    checkpoint.check_config(run_dir, cfg)
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
    check_loaded(cfg, lm)

    groups = run_context_templates(cfg, lm, run_dir)
    stats = second_moments(cfg, lm, data_dir)
    editor = build_method(cfg, lm, stats, groups)
    ctx = editor.ctx
    t0 = time.perf_counter()
    scorer = make_scorer(cfg, lm, requests)
    pre_seconds = time.perf_counter() - t0
    meta = {"protocol": protocol, "batch_size": batch_size, "num_steps": num_steps,
            "scorer": f"token_tf/{scorer.locality}", "dataset": cfg.dataset.get("label", cfg.dataset.name),
            "method": cfg.method.name, "model": lm.name, "seed": int(cfg.seed)}

    # After the pre-edit snapshot (it needs W0), before the sinks open the files it trims.
    done = resume_from_checkpoint(run_dir, editor, ctx) if resuming else 0
    steps_sink, edits_sink = JsonlSink(run_dir / "steps.jsonl"), JsonlSink(run_dir / "edits.jsonl")
    downstream = Downstream(cfg.get("downstream"), lm, data_dir, int(cfg.seed), run_dir, meta)
    wandb = WandbSink(cfg.logger.wandb, run_dir, OmegaConf.to_container(cfg, resolve=True),
                      name=f"{cfg.method.name}-{lm.name}-{cfg.dataset.name}-s{cfg.seed}")
    telemetry = Telemetry(lm.spec, lm.model, ctx.originals)
    guard = Guard(cfg.get("guard"), cfg.method)
    every = max(int(cfg.telemetry_every), 1)
    checkpoint_every = int(cfg.get("checkpoint_every") or 0)
    final_records: list[dict] = []
    if protocol == "immediate":
        final_records = [r for r in read_jsonl(run_dir / "edits.jsonl") if not r.get("final")]
    try:
        if done == 0:
            downstream.maybe(0, num_steps, wandb)  # pre-edit baseline, before the first edit
        else:
            downstream.reload_baseline()
        for step in tqdm(range(done + 1, num_steps + 1), desc=f"{cfg.method.name} edits", unit="step",
                         initial=done, total=num_steps):
            batch = requests[(step - 1) * batch_size : step * batch_size]
            take()
            t_edit = clock()
            diag = editor.edit(batch)
            edit_seconds = clock() - t_edit
            record = {"step": step, "case_ids": [r.case_id for r in batch], "edit_seconds": edit_seconds,
                      "phases": phase_split(edit_seconds, take()), **diag}
            rejected = editor.take_rejected()
            if rejected:  # the guard kept these matrices as they were: the step's edit failed there
                record |= {"edit_failed": True, "rejected_layers": rejected}
            ratios = editor.take_update_ratios()
            record["update_ratio"] = {str(k): v for k, v in sorted(ratios.items())}
            record["warnings"] = guard.check(step, record, ratios)
            if step % every == 0 or step == num_steps:
                t_tel = clock()
                record["matrices"] = telemetry()
                record["telemetry_seconds"] = clock() - t_tel
            if protocol == "immediate":  # scored before the step's record is written: the guard reads the scores
                scored = _score(scorer, batch, step, step, meta, edits_sink)
                final_records += scored
                record["warnings"] += guard.check_scores(step, scored)
            if step in score_at and step != num_steps:
                scored = _score(scorer, requests[: step * batch_size], step, None, meta, edits_sink)
                record["warnings"] += guard.check_scores(step, scored)
            steps_sink.write({**meta, **record})
            wandb.log({k: v for k, v in record.items()
                       if k in ("edit_seconds", "phases", "telemetry_seconds", "matrices")}, step=step)
            if step != num_steps:
                downstream.maybe(step, num_steps, wandb)
            if checkpoint_every and (step % checkpoint_every == 0 or step == num_steps):
                checkpoint.save(run_dir, step, editor, ctx)  # after every record of the step
        finalize_diag = editor.finalize()
        if finalize_diag:
            steps_sink.write({**meta, "step": "finalize", **finalize_diag, "matrices": telemetry()})
        downstream.maybe(num_steps, num_steps, wandb, final=True)  # after the last step (and PRUNE's finalize)
        # The paper's protocol scores every edit on the final model; an immediate run gets that view too
        # (summary's `after_last_edit`), so one run shows what was learnt and what was kept.
        after_last = _score(scorer, requests, num_steps, None, {**meta, "final": True}, edits_sink)
        final_warnings = guard.check_scores("final", after_last)
        if protocol != "immediate":
            final_records = after_last
    finally:
        steps_sink.close()
        edits_sink.close()
        downstream.close()

    # counted from the whole steps.jsonl, so a resumed run counts the steps before the resume too
    warnings = count_warnings([r for r in read_jsonl(run_dir / "steps.jsonl") if r.get("step") != "finalize"]
                              + [{"warnings": final_warnings}])
    summary = {**meta, "n": len(final_records), **summarize(final_records), "warnings": warnings,
               "downstream": downstream.last,
               "pre": summarize(list(scorer.pre_scores.values())),
               "model_source": lm.source, "data_dir": str(data_dir), "demo_data": is_demo_dir(data_dir),
               "config_warnings": cfg_warnings}
    if protocol == "immediate":
        summary["after_last_edit"] = {"n": len(after_last), **summarize(after_last)}
    # Timings live apart from the results, so the same config and seed give an identical summary.json.
    write_json(run_dir / "timing.json", {"load_seconds": lm.load_seconds, "pre_scoring_seconds": pre_seconds,
                                         "scoring_seconds": scorer.seconds, "peak_rss_mib": peak_rss_mib(),
                                         "peak_device_mib": peak_device_mib()})
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

    def reload_baseline(self) -> None:
        """On resume: the pre-edit scores recorded before the first edit."""
        if self.enabled:
            path = self.sink.path
            self.baseline = {r["task"]: r for r in read_jsonl(path) if r.get("step") == 0} or None

    def maybe(self, step: int, num_steps: int, wandb: WandbSink, final: bool = False) -> None:
        every = int(self.cfg.get("every_k_steps") or 0) if self.enabled else 0
        if not self.enabled or not (step in (0, num_steps) or (every and step % every == 0)):
            return
        from evaluation.downstream import retention

        scores = downstream_scores(self.cfg, self.lm, self.data_dir, self.seed, pre_edit=step == 0)
        if self.baseline is None:
            self.baseline = scores
        ratios = retention(scores, self.baseline)
        for task, result in scores.items():
            self.sink.write({**self.meta, "step": step, "task": task, **result, "retention": ratios.get(task),
                             **({"final": True} if final else {})})
        numeric = {t: {k: v for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
                   for t, r in scores.items()}
        wandb.log({"downstream": numeric, "retention": ratios}, step=step)
        self.last = downstream_last(step, scores, ratios)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


def downstream_scores(ds_cfg: Any, lm: Any, data_dir: Path, seed: int, *, pre_edit: bool) -> dict:
    """The `downstream` config's tasks on the model as it stands. Pre-edit scores go through the
    cache: the unedited weights are what the model fingerprint identifies."""
    from evaluation.downstream import evaluate_downstream

    return evaluate_downstream(
        lm.model, lm.tokenizer, data_dir, list(ds_cfg.tasks), ds_cfg.get("n_examples"),
        batch_size=int(ds_cfg.get("batch_size", 8)), max_length=int(ds_cfg.get("max_length", 1024)),
        seed=seed, chat_template=bool(ds_cfg.get("chat_template", False)),
        cache=(lm.fingerprint, cache_root() / "downstream") if pre_edit else None)


def downstream_last(step: int, scores: dict, ratios: dict) -> dict:
    """The summary's `downstream` entry: each task's score and its retention ratio after `step`."""
    return {"step": step, **{t: r["score"] for t, r in scores.items()}, **{f"{t}_retention": v for t, v in ratios.items()}}


def run_context_templates(cfg: DictConfig, lm, run_dir: Path) -> list[list[str]]:
    """The context-template groups, sampled once per run and kept in the run dir (resume reads them)."""
    path = run_dir / "context_templates.json"
    if cfg.get("resume") and path.is_file():
        return json.loads(path.read_text())
    groups = context_templates(cfg, lm)
    path.write_text(json.dumps(groups, indent=1))
    return groups


def resume_from_checkpoint(run_dir: Path, editor, ctx) -> int:
    """Restore the last checkpoint (if any), drop records written after it; the number of steps done."""
    ckpt = checkpoint.load(run_dir)
    done = ckpt.step if ckpt else 0
    # Without a checkpoint nothing is kept, not even a pre-edit downstream baseline (step 0): it reruns.
    dropped = checkpoint.truncate_records(run_dir, done if ckpt else -1)
    if ckpt:
        checkpoint.restore(ckpt, editor, ctx)
    log.info("resuming %s after step %d (records dropped past it: %s)", run_dir, done, dropped)
    return done


def phase_split(edit_seconds: float, phases: dict[str, float]) -> dict[str, float]:
    """An edit's wall time as keys + values (the shared machinery) + solve (the method's own rest)."""
    keys, values = phases.get("keys", 0.0), phases.get("values", 0.0)
    return {"keys": keys, "values": values, "solve": max(edit_seconds - keys - values, 0.0)}


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_device_mib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


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
    if "after_last_edit" in summary:
        rows["after the last edit"] = {m: summary["after_last_edit"].get(m) for m in SUMMARY_METRICS}
    df = pd.DataFrame(rows).T.dropna(axis=1, how="all")
    print(f"\n{summary['model']} · {summary['dataset']} · n={summary['n']} · scorer {summary['scorer']}")
    print((df * 100).round(2).to_string())
