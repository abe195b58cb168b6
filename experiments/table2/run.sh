#!/usr/bin/env bash
# Table 2 at cpu scale: the cells of cells.sh (8 methods × CounterFact and ConceptEdit-Inter, batch
# size 10) through experiments/cpu.sh (JOBS at a time, resumable, cell dirs runs/<method>-<dataset>),
# then the table from the finished cells. `run.sh lambda` runs the train-split λ check at batch size
# 10 instead (lambda-cells.sh, cell dirs lambda/runs/, tables in lambda/). Run from the repo root:
#   bash experiments/table2/run.sh                 ONLY='-counterfact$' bash experiments/table2/run.sh
#   bash experiments/table2/run.sh lambda
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=experiments/table2
if [ "${1:-}" = lambda ]; then
  CELLS=$OUT/lambda-cells.sh RUNS=$OUT/lambda/runs bash experiments/cpu.sh
  $PY -m editbench.report $OUT/lambda/runs/emmet-* --by method config:method.mom2_update_weight --out $OUT/lambda
  $PY -m editbench.report $OUT/lambda/runs/alphaedit-* --by method config:method.L2 --out $OUT/lambda/alphaedit
  exit 0
fi
RUNS=$OUT/runs
CELLS=$OUT/cells.sh RUNS=$RUNS bash experiments/cpu.sh
$PY -m editbench.report $RUNS --layout paper --out $OUT \
    --title "Table 2 at cpu scale (the paper: LLaMA3-8B and Qwen2.5-7B, 500 steps of 10)"
