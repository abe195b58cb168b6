#!/usr/bin/env bash
# Issues 5-6 on SmolLM2: immediate reliability of each baseline over 20 single CounterFact edits
# (each edit scored right after it; eval_at=immediate), with the SmolLM2 configs of conf/method_model.
# The 200-edit single-sequential runs are Table 1's CounterFact cells (experiments/table1).
# Run from the repo root; cells land in experiments/baselines/runs/imm-<method>.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data}
RUNS=experiments/baselines/runs
for m in ${METHODS:-rome memit emmet rect prune alphaedit}; do
  $PY -m editbench method=$m num_edits=20 eval_at=immediate threads=${THREADS:-1} logger.wandb.mode=offline \
      hydra.run.dir=$RUNS/imm-$m
done
$PY -m editbench.report $RUNS/imm-* --by method config:method.mom2_update_weight --out experiments/baselines
