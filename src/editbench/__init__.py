"""editbench: sequential knowledge editing (MOSE and baselines) through one loop.

The Python API (`editbench.load`, `editbench.Session`, see editbench/api.py) is imported on first
use, so that `import editbench` stays cheap (no torch) until the API is needed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Session", "load"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from editbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'editbench' has no attribute {name!r}")
