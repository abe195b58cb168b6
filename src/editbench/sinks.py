"""Where a run's results go: JSONL files in the run directory (always) and W&B (offline by default).

Each JSONL record is written, flushed and fsynced as it is produced, so a crash or Ctrl-C never
loses finished work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from editbench.io import json_safe


class JsonlSink:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(json_safe(record)) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, key + "/")
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = v
    return out


class WandbSink:
    """A thin wrapper: offline unless logger.wandb.mode=online; `disabled` writes nothing."""

    def __init__(self, cfg: Any, run_dir: Path, config: dict, name: str) -> None:
        self.run = None
        if cfg.mode == "disabled":
            return
        import wandb

        self.run = wandb.init(
            mode=cfg.mode, project=cfg.project, group=cfg.get("group"), name=name, dir=str(run_dir),
            config=config, reinit="finish_previous",
        )

    def log(self, metrics: dict, step: int) -> None:
        if self.run is not None:
            self.run.log(flatten(metrics), step=step)

    def table(self, key: str, records: list[dict]) -> None:
        if self.run is not None and records:
            import pandas as pd
            import wandb

            self.run.log({key: wandb.Table(dataframe=pd.DataFrame(records))})

    def summary(self, values: dict) -> None:
        if self.run is not None:
            for k, v in flatten(values).items():
                self.run.summary[k] = v

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
