"""The downstream schedule: general abilities (evaluation/) before the first edit, every
`downstream.every_k_steps` steps and after the last, each with its retention against the pre-edit score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from editbench.cache import cache_root
from editbench.io import read_jsonl
from editbench.sinks import JsonlSink, WandbSink


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

    def start(self, done: int, num_steps: int, wandb: WandbSink) -> None:
        """The pre-edit baseline before the first edit; on resume, the one recorded then."""
        if done == 0:
            self.maybe(0, num_steps, wandb)
        else:
            self.reload_baseline()

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
