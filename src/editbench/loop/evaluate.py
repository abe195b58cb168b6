"""The scoring protocols (methods.md D10) and edits.jsonl.

immediate: each batch right after its edit; checkpoints: every edit so far after the listed steps;
final: every edit on the final model. Every run also scores every edit after the last one (the
summary's `after_last_edit` for an immediate run), so one run shows what was learnt and what was kept.
"""

from __future__ import annotations

from pathlib import Path

from editbench.build import summarize
from editbench.data.records import EditRequest
from editbench.guard import Guard
from editbench.io import read_jsonl
from editbench.loop.plan import Cell
from editbench.sinks import JsonlSink


class Evaluation:
    def __init__(self, cell: Cell, guard: Guard, run_dir: Path) -> None:
        self.cell, self.plan, self.guard = cell, cell.plan, guard
        self.sink = JsonlSink(run_dir / "edits.jsonl")
        self.records: list[dict] = []  # the records the summary's scores come from
        if self.plan.protocol == "immediate":  # a resumed run's immediate scores so far
            self.records = [r for r in read_jsonl(run_dir / "edits.jsonl") if not r.get("final")]
        self.after_last: list[dict] = []
        self.final_warnings: list = []

    def after_step(self, step: int, batch: list[EditRequest], record: dict) -> None:
        """Score what the protocol scores after `step`; the guard's findings join the step's record."""
        if self.plan.protocol == "immediate":  # scored before the step's record is written: the guard reads them
            scored = self._score(batch, step, step, self.cell.meta)
            self.records += scored
            record["warnings"] += self.guard.check_scores(step, scored)
        if step in self.plan.score_at and step != self.plan.num_steps:
            scored = self._score(self.cell.requests[: step * self.plan.batch_size], step, None, self.cell.meta)
            record["warnings"] += self.guard.check_scores(step, scored)

    def after_last_edit(self) -> None:
        """Every edit scored on the final model (after PRUNE's finalize)."""
        self.after_last = self._score(self.cell.requests, self.plan.num_steps, None, {**self.cell.meta, "final": True})
        self.final_warnings = self.guard.check_scores("final", self.after_last)
        if self.plan.protocol != "immediate":
            self.records = self.after_last

    def scores(self) -> dict:
        """The summary's scores: n and the metric means of the protocol's records."""
        return {"n": len(self.records), **summarize(self.records)}

    def close(self) -> None:
        self.sink.close()

    def _score(self, requests: list[EditRequest], eval_step: int, edit_step: int | None, meta: dict) -> list[dict]:
        records = []
        for i, rec in enumerate(self.cell.scorer.score(requests)):
            step_edited = edit_step if edit_step is not None else i // meta["batch_size"] + 1
            full = {**meta, "n": len(requests), "eval_step": eval_step, "edit_step": step_edited, **rec}
            self.sink.write(full)
            records.append(full)
        return records
