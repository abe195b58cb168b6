"""A run dir's state: finished (return its summary), fresh (it must hold no results), or resumed
after its last checkpoint (records written past it are dropped)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from editbench import checkpoint
from editbench.errors import ConfigError
from editbench.io import read_jsonl
from editbench.locate.context import EditContext

log = logging.getLogger(__name__)


def finished_summary(cfg: DictConfig, run_dir: Path) -> dict | None:
    """The summary of a resumed run that already finished; None for a run to do. A fresh run into a
    dir holding results is refused."""
    resuming = bool(cfg.get("resume"))
    if resuming and (run_dir / "summary.json").is_file():
        log.info("%s already finished; nothing to resume", run_dir)
        return json.loads((run_dir / "summary.json").read_text())
    if not resuming and read_jsonl(run_dir / "steps.jsonl"):
        raise ConfigError(f"{run_dir} already holds a run's results; continue it with resume={run_dir}, "
                          "or give this run its own hydra.run.dir")
    return None


def resume_from_checkpoint(run_dir: Path, editor, ctx: EditContext) -> int:
    """Restore the last checkpoint (if any), drop records written after it; the number of steps done."""
    ckpt = checkpoint.load(run_dir)
    done = ckpt.step if ckpt else 0
    # Without a checkpoint nothing is kept, not even a pre-edit downstream baseline (step 0): it reruns.
    dropped = checkpoint.truncate_records(run_dir, done if ckpt else -1)
    if ckpt:
        checkpoint.restore(ckpt, editor, ctx)
    log.info("resuming %s after step %d (records dropped past it: %s)", run_dir, done, dropped)
    return done
