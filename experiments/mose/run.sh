#!/usr/bin/env bash
# MOSE on SmolLM2 (issue: MOSE). Each block is one artefact; run from the repository root.
# Runs land in experiments/mose/runs/ (ignored); the tables and figures they produce are committed.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data}
OUT=experiments/mose
RUNS=$OUT/runs
common="model=smollm2-135m logger.wandb.mode=offline"

case "${1:-all}" in
lambda|all)
  # λ on the CounterFact *train* split (D5), never on the evaluated split.
  $PY -m editbench --multirun method=mose dataset.split=train num_edits=${LAMBDA_EDITS:-10} \
      method.mom2_update_weight=${LAMBDAS:-1,10,100,1000} $common hydra.sweep.dir=$RUNS/lambda \
      'hydra.sweep.subdir=lambda-${method.mom2_update_weight}'
  $PY -m editbench.report $RUNS/lambda --by override:method.mom2_update_weight --out $OUT/lambda
  ;;&
norms|all)
  # 100 single-sequential edits, eval_at=final: MOSE against the additive ft; Fig. 2 at our scale.
  for m in mose ft; do
    $PY -m editbench method=$m num_edits=${EDITS:-100} $common hydra.run.dir=$RUNS/norms/$m
  done
  $PY -m editbench.report $RUNS/norms --by method --out $OUT/norms --plot-norms $RUNS/norms/mose $RUNS/norms/ft
  ;;&
selection|all)
  # The paper's Fig. 4 ablation at our scale: fixed layer, selected layer, selected + neighbours.
  # select_neighbors is the default, i.e. the norms block's MOSE run: it is read from there.
  for mode in fixed select; do
    $PY -m editbench method=mose method.layer_selection=$mode num_edits=${EDITS:-100} $common \
        hydra.run.dir=$RUNS/selection/$mode
  done
  $PY -m editbench.report $RUNS/selection $RUNS/norms/mose --by config:method.layer_selection --out $OUT/selection
  ;;
lambda100)
  # Diagnosis of the 100-edit collapse (README, norms section): the same 100 edits at λ = 100,
  # with the GLUE-style downstream tasks. On the evaluated split: not a tuning run (D5).
  $PY -m editbench method=mose method.mom2_update_weight=100 num_edits=${EDITS:-100} downstream=glue $common \
      hydra.run.dir=$RUNS/lambda100/mose
  ;;
esac
