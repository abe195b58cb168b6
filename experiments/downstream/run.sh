#!/usr/bin/env bash
# General abilities of SmolLM2 before editing and after 100 sequential MOSE and 100 MEMIT edits
# (issue 7): the four USTC generation tasks, n = 100 each. Run from the repository root.
# The two 100-edit runs are the λ-sweep cells of experiments/lambda (CounterFact train split, eval
# at 25, 50 and 100 edits), so the edits are paid once; their final weights are scored afterwards.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=experiments/downstream
CELLS="${CELLS:-experiments/lambda/runs/mose-100 experiments/lambda/runs/mose-1000 experiments/lambda/runs/memit-2000}"
# 1. the unedited model, with its wall time (also fills the pre-edit cache the runs below reuse)
$PY $OUT/pre_edit.py threads=1 > $OUT/pre_edit.json
# 2. the 100-edit runs, if they are not there yet (one cell each of experiments/lambda/run.sh)
for cell in $CELLS; do
  [ -f $cell/summary.json ] && continue
  name=$(basename $cell); method=${name%-*}; lam=${name##*-}
  $PY -m editbench method=$method method.mom2_update_weight=$lam model=smollm2-135m dataset.split=train \
      num_edits=100 'eval_at=[25,50]' logger.wandb.mode=offline threads=1 hydra.run.dir=$cell
done
# 3. their final weights on the same tasks, and the table
$PY -m editbench.posthoc $CELLS downstream=usual threads=1
$PY -m editbench.report $CELLS --by method config:method.mom2_update_weight --out $OUT
