"""Where results go: JSONL files in the run directory (always) and W&B (offline by default).

Each JSONL record is written, flushed and fsynced as it is produced, so a crash or Ctrl-C never
loses finished work.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _clean(x: Any) -> Any:
    """JSON-safe: non-finite floats become strings ("inf", "nan") instead of invalid JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


class JsonlSink:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(_clean(record)) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def read_jsonl(path: Path) -> list[dict]:
    """All complete records; a torn last line (a crash mid-write) is dropped."""
    records = []
    if not Path(path).is_file():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A fresh temp file beside `path` to write; fsynced and renamed onto `path` when the block ends,
    removed if it raises. Readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; caches may be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _unclean(x: Any) -> Any:
    """The inverse of _clean: the strings it wrote for non-finite floats become floats again."""
    if isinstance(x, str):
        return _NON_FINITE.get(x, x)
    if isinstance(x, dict):
        return {k: _unclean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_unclean(v) for v in x]
    return x


def read_json(path: Path) -> Any:
    """A file write_json wrote, with its non-finite floats restored."""
    return _unclean(json.loads(Path(path).read_text(encoding="utf-8")))


def write_json(path: Path, obj: dict, indent: int = 2) -> None:
    """Write atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(_clean(obj), indent=indent), encoding="utf-8")


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Replace a JSONL file atomically with these records."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(json.dumps(_clean(r)) + "\n" for r in records), encoding="utf-8")


def save_tensors(tensors: dict, path: Path, metadata: dict) -> None:
    """safetensors, atomically (every cache and checkpoint goes through here; no pickle)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)


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
