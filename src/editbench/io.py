"""Files written whole and atomically: JSON, JSONL and safetensors (no pickle anywhere).

Every cache, checkpoint and result file goes through here: a temp file beside the target, fsynced
and renamed onto it, so readers see the old file or the new one, never a part. Non-finite floats
are written as strings ("inf", "nan") and read back as floats.
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


def json_safe(x: Any) -> Any:
    """JSON-safe: non-finite floats become strings ("inf", "nan") instead of invalid JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x


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
    """The inverse of json_safe: the strings it wrote for non-finite floats become floats again."""
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
        Path(tmp).write_text(json.dumps(json_safe(obj), indent=indent), encoding="utf-8")


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Replace a JSONL file atomically with these records."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(json.dumps(json_safe(r)) + "\n" for r in records), encoding="utf-8")


def save_tensors(tensors: dict, path: Path, metadata: dict) -> None:
    """safetensors, atomically (every cache and checkpoint goes through here; no pickle)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)


def load_tensors(path: Path, device: Any = "cpu") -> dict:
    """A safetensors file's tensors on `device`: read straight onto a CPU or CUDA device (no host copy
    of a GPU's C0 or projector), through the host for others (e.g. meta in tests)."""
    import torch  # late: the ground floor stays free of torch at import
    from safetensors.torch import load_file

    device = torch.device(device)
    if device.type in ("cpu", "cuda"):
        return load_file(path, device=str(device))
    return {k: v.to(device) for k, v in load_file(path).items()}
