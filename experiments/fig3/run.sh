#!/usr/bin/env bash
# Fig. 3 at cpu scale: the cells of cells.sh through experiments/cpu.sh (JOBS at a time, resumable,
# cell dirs runs/<method>), then the curves and the edit scores from the finished cells.
# Run from the repo root:   bash experiments/fig3/run.sh      (ONLY='^mose$' for one cell)
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUNS=experiments/fig3/runs
CELLS=experiments/fig3/cells.sh RUNS=$RUNS bash experiments/cpu.sh
finished=(); for d in $RUNS/*; do [ -f "$d/summary.json" ] && finished+=("$d"); done
$PY -m editbench.report "${finished[@]}" --by method --plot-downstream "${finished[@]}" --out experiments/fig3
