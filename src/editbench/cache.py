"""Where editbench keeps what it computes once: ``$EDITBENCH_CACHE`` or ``~/.cache/editbench``.

Beneath it: ``models/`` (dequantised GGUFs), ``stats/`` (C0 second moments), ``projectors/``
(AlphaEdit's null-space projectors), ``downstream/`` (pre-edit downstream scores), ``data/``
(downloaded data files) and ``file_hashes.json`` (the sha256 of large files, by path/size/mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from editbench.io import load_tensors, save_tensors, write_json


def cache_root() -> Path:
    """``$EDITBENCH_CACHE`` or ``~/.cache/editbench``."""
    return Path(os.environ.get("EDITBENCH_CACHE") or Path.home() / ".cache" / "editbench").expanduser()


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered in ``$EDITBENCH_CACHE/file_hashes.json`` by (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index_path = cache_root() / "file_hashes.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    index[key] = h.hexdigest()
    write_json(index_path, index, indent=1)
    return index[key]


def digest(*parts: object) -> str:
    """A short hex key for a description (JSON of the parts): equal descriptions, equal keys."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


class TensorCache:
    """One kind of computed tensor kept under ``cache_root()/<kind>/<stem>-<key>.safetensors``.

    The one keyed-cache mechanism for what is computed once per model and setting (C0 second
    moments, AlphaEdit's projectors): the key describes everything the value depends on, the
    file holds one tensor named `name` (no pickle), written atomically with metadata saying what it is.
    """

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name

    def path(self, stem: str, key: str) -> Path:
        return cache_root() / self.kind / f"{stem}-{key}.safetensors"

    def load(self, stem: str, key: str, device: torch.device | str = "cpu") -> torch.Tensor | None:
        """The cached tensor on `device` (read straight there), or None if not computed yet."""
        path = self.path(stem, key)
        return load_tensors(path, device)[self.name] if path.is_file() else None

    def save(self, stem: str, key: str, tensor: torch.Tensor, metadata: dict[str, str]) -> None:
        save_tensors({self.name: tensor}, self.path(stem, key), metadata)
