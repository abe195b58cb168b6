#!/usr/bin/env bash
# Gemma3-270M after issue 24 (post-FFN norm mapped, methods.md D14): the issue's table re-run, then the λ / L2
# sweeps that choose conf/method_model/{memit,alphaedit,mose}_gemma3-270m.yaml on the CounterFact train split.
# Cells: cells.sh, through experiments/cpu.sh (JOBS at a time, resumable) or, on a lent GPU,
# CELLS=experiments/gemma3/cells.sh bash experiments/gpu.sh. Run from the repo root:
#   bash experiments/gemma3/run.sh                 # everything, then the tables
#   ONLY='^issue-' bash experiments/gemma3/run.sh  # the issue's three runs only (a few minutes each)
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=experiments/gemma3 RUNS=experiments/gemma3/runs
CELLS=$OUT/cells.sh RUNS=$RUNS bash experiments/cpu.sh
$PY -m editbench.report $RUNS/issue-* --by method --out $OUT/issue
if compgen -G "$RUNS/gemma-*/summary.json" > /dev/null; then
  $PY -m editbench.report $RUNS/gemma-{memit,mose,rome}* --by method config:method.mom2_update_weight --out $OUT
  $PY -m editbench.report $RUNS/gemma-alphaedit-* --by method config:method.L2 --out $OUT/alphaedit
fi
# Then: pick by the rule of experiments/lambda (best mean of R / G / L after 100 edits) and write the value and
# the sweep's numbers into conf/method_model/<method>_gemma3-270m.yaml; check summary.json `warnings` (guard).
