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

from editbench.io import write_json


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
