#!/usr/bin/env bash
# Table 2 at cpu scale: the cells of cells.sh through experiments/cpu.sh (JOBS at a time, resumable,
# cell dirs runs/<method>-<dataset>), then the table from the finished cells. Run from the repo root:
#   bash experiments/table2/run.sh                 ONLY='-counterfact$' bash experiments/table2/run.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUNS=experiments/table2/runs
CELLS=experiments/table2/cells.sh RUNS=$RUNS bash experiments/cpu.sh
$PY -m editbench.report $RUNS --layout paper --out experiments/table2
