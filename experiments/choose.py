"""The train-split choice rule that experiments/lambda's README states, as code for gemma3/issue20 and table2/lambda:
in a cells file whose grid cells are named `<prefix><method>-<value>`, per method the value whose finished run has the
best mean of reliability, generalization and locality (summary.json: the final model's scores); a tie keeps the
first value in the file's order, and a method with an unfinished cell is left out. Never run on the evaluated split
(methods.md D5)."""

from __future__ import annotations

import json
from pathlib import Path

from editbench.cells import file_cells
from editbench.results.paper import PAPER_METRICS as MEASURES  # reliability, generalization, locality


def grid_choices(cells_file: Path, runs: Path, prefix: str = "") -> dict[str, str]:
    """{method: chosen value} over the cells of `cells_file` whose names start with `prefix`."""
    grids: dict[str, list[str]] = {}
    for cell in file_cells(cells_file):
        if cell.name.startswith(prefix):
            method, value = cell.name.removeprefix(prefix).rsplit("-", 1)
            grids.setdefault(method, []).append(value)
    chosen = {}
    for method, values in grids.items():
        summaries = [runs / f"{prefix}{method}-{v}" / "summary.json" for v in values]
        if all(p.is_file() for p in summaries):
            means = [sum(json.loads(p.read_text())[k] for k in MEASURES) / len(MEASURES) for p in summaries]
            chosen[method] = values[means.index(max(means))]
    return chosen
