#!/usr/bin/env bash
# Fig. 4 at cpu scale: the cells of cells.sh through experiments/cpu.sh (resumable, cell dirs
# runs/<mode>), Fig. 3's MOSE cell as the select_neighbors row (run experiments/fig3/run.sh first, or
# ONLY='^mose$' of it), then the table and the edited matrices' norms per mode. Run from the repo root:
#   bash experiments/fig4/run.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUNS=experiments/fig4/runs
CELLS=experiments/fig4/cells.sh RUNS=$RUNS bash experiments/cpu.sh
[ -f experiments/fig3/runs/mose/summary.json ] || ONLY='^mose$' CELLS=experiments/fig3/cells.sh RUNS=experiments/fig3/runs bash experiments/cpu.sh
runs=("$RUNS/fixed" "$RUNS/select" experiments/fig3/runs/mose)
$PY -m editbench.report "${runs[@]}" --by config:method.layer_selection --plot-norms "${runs[@]}" --out experiments/fig4
