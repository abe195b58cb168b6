#!/usr/bin/env bash
# Issue 20's second real model: Gemma3-270M, MOSE / MEMIT / AlphaEdit at 100 CounterFact edits with λ chosen on
# the train split (issue20-cells.sh). Resumable, JOBS cells at a time; run from the repo root:
#   bash experiments/gemma3/issue20.sh
# 1. the λ grid (20 train-split edits per value), 2. the choice (choose_lambda.py: best mean R/G/L), 3. the three
# 100-edit cells on the evaluated split with the chosen values and MOSE's other λ, 4. MOSE's λ checked at the
# evaluated horizon (100 train edits, the same rule), 5. the three tables (issue20-lambda/, issue20-horizon/, issue20/).
set -euo pipefail
PY=${PY:-.venv/bin/python}
export EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data}
OUT=experiments/gemma3 RUNS=experiments/gemma3/runs CELLS=experiments/gemma3/issue20-cells.sh
run() { $PY -m editbench.cells $CELLS --runs $RUNS --jobs "${JOBS:-2}" ${DEADLINE:+--deadline "$DEADLINE"} "$@"; }
run --only '^i20-lam-'
chosen=$(PYTHONPATH=src:. $PY $OUT/choose_lambda.py $CELLS $RUNS)
echo "chosen on the train split: $chosen"
export $chosen
run --only '^i20-e100-'
run --only '^i20-h100-'
echo "chosen at the evaluated horizon: $(PYTHONPATH=src:. $PY $OUT/choose_lambda.py $CELLS $RUNS i20-h100-)"
$PY -m editbench.report $RUNS/i20-lam-* --by method config:method.mom2_update_weight config:method.L2 \
    --out $OUT/issue20-lambda > /dev/null
$PY -m editbench.report $RUNS/i20-h100-* --by method config:method.mom2_update_weight --out $OUT/issue20-horizon \
    > /dev/null
$PY -m editbench.report $RUNS/i20-e100-* --by label config:method.mom2_update_weight --out $OUT/issue20 > /dev/null
