"""One edit step: the editor's edit with its diagnostics and phase times, the guard's checks, and the
telemetry of every edited matrix (every `telemetry_every` steps and at the last)."""

from __future__ import annotations

from omegaconf import DictConfig

from editbench.data.records import EditRequest
from editbench.editors.base import Editor
from editbench.guard import Guard
from editbench.models.loading import LoadedModel
from editbench.telemetry import Telemetry
from editbench.timing import clock, take


class Stepper:
    def __init__(self, cfg: DictConfig, editor: Editor, lm: LoadedModel, num_steps: int) -> None:
        self.editor, self.num_steps = editor, num_steps
        self.telemetry = Telemetry.from_cfg(cfg, lm.spec, lm.model, editor.ctx.originals)
        self.guard = Guard(cfg.get("guard"), cfg.method)
        self.every = max(int(cfg.telemetry_every), 1)

    def edit(self, step: int, batch: list[EditRequest]) -> dict:
        """Apply one batch; the step's record (without the run's meta fields)."""
        take()
        t_edit = clock()
        diag = self.editor.edit(batch)
        edit_seconds = clock() - t_edit
        record = {"step": step, "case_ids": [r.case_id for r in batch], "edit_seconds": edit_seconds,
                  "phases": phase_split(edit_seconds, take()), **diag}
        rejected = self.editor.take_rejected()
        if rejected:  # the guard kept these matrices as they were: the step's edit failed there
            record |= {"edit_failed": True, "rejected_layers": rejected}
        ratios = self.editor.take_update_ratios()
        record["update_ratio"] = {str(k): v for k, v in sorted(ratios.items())}
        record["warnings"] = self.guard.check(step, record, ratios)
        if step % self.every == 0 or step == self.num_steps:
            t_tel = clock()
            record["matrices"] = self.telemetry()
            record["telemetry_seconds"] = clock() - t_tel
        return record

    def finalize(self) -> dict | None:
        """The editor's post-hoc step (PRUNE), as a record with the matrices after it; None if it has none."""
        diag = self.editor.finalize()
        return {"step": "finalize", **diag, "matrices": self.telemetry()} if diag else None


def phase_split(edit_seconds: float, phases: dict[str, float]) -> dict[str, float]:
    """An edit's wall time as keys + values (the shared machinery) + solve (the method's own rest)."""
    keys, values = phases.get("keys", 0.0), phases.get("values", 0.0)
    return {"keys": keys, "values": values, "solve": max(edit_seconds - keys - values, 0.0)}
