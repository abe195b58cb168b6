#!/usr/bin/env bash
# General abilities of SmolLM2 before editing and after 100 sequential MOSE and 100 MEMIT edits
# (issue 7): the four USTC generation tasks, n = 100 each. Run from the repository root.
# The two 100-edit runs are the λ-sweep cells of experiments/lambda (CounterFact train split, eval
# at 25, 50 and 100 edits), so the edits are paid once; their final weights are scored afterwards.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=experiments/downstream
RUN_DIRS="${RUN_DIRS:-experiments/lambda/runs/mose-100 experiments/lambda/runs/mose-1000 experiments/lambda/runs/memit-2000}"
# 1. the unedited model, with its wall time (also fills the pre-edit cache the runs below reuse)
$PY $OUT/pre_edit.py threads=1 > $OUT/pre_edit.json
# 2. the 100-edit runs, if they are not there yet (their cells of experiments/lambda/cells.sh)
names=$(for cell in $RUN_DIRS; do basename $cell; done | paste -sd'|')
$PY -m editbench.cells experiments/lambda/cells.sh --runs experiments/lambda/runs --only "^($names)\$"
# 3. their final weights on the same tasks, and the table
$PY -m editbench.posthoc $RUN_DIRS downstream=usual threads=1
$PY -m editbench.report $RUN_DIRS --by method config:method.mom2_update_weight --out $OUT
