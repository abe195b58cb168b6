#!/usr/bin/env bash
# λ sweeps for SmolLM2 at 100 single-sequential edits on the CounterFact *train* split (methods.md D5:
# tune on train, never on the evaluated split; at the sequence length that is evaluated, since a λ
# chosen on 10 edits did not hold at 100, experiments/mose/README.md). One Hydra multirun per method;
# add `hydra/launcher=local hydra.launcher.n_jobs=2 threads=1` for two cells at a time on 2 cores.
# (LAUNCH="hydra/launcher=local hydra.launcher.n_jobs=2 threads=1" does that here.)
# CELLS=experiments/lambda/cells.sh bash experiments/gpu.sh runs the same cells in parallel on a lent GPU.
# Run from the repo root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data}
OUT=experiments/lambda RUNS=experiments/lambda/runs
common="${LAUNCH:-} model=smollm2-135m dataset.split=train num_edits=${EDITS:-100} eval_at=[25,50] logger.wandb.mode=offline"
sweep() {  # sweep <swept key> <overrides...>: cells land in runs/<method>-<value of the key>
  local key=$1; shift
  $PY -m editbench --multirun "$@" $common hydra.sweep.dir=$RUNS "hydra.sweep.subdir=\${method.name}-\${$key}"
}
sweep method.mom2_update_weight method=mose method.mom2_update_weight=${MOSE_LAMBDAS:-10,100,1000,10000}
[ "${ONLY:-}" = mose ] && exit 0
sweep method.mom2_update_weight method=memit method.mom2_update_weight=2000,5000,10000
sweep method.mom2_update_weight method=emmet method.mom2_update_weight=10000,100000
sweep method.L2 method=alphaedit method.L2=1,10
sweep method.name method=rome
# One row per method and λ (report.md); AlphaEdit's cells differ in L2, not λ, so they get their own table.
$PY -m editbench.report $RUNS/{mose,memit,emmet}-* $RUNS/rome* --by method config:method.mom2_update_weight --out $OUT
$PY -m editbench.report $RUNS/alphaedit-* --by method config:method.L2 --out $OUT/alphaedit
# The chosen value of each method side by side, with Fig. 2's norm and condition-number trajectories.
chosen="$RUNS/mose-1000 $RUNS/memit-5000 $RUNS/emmet-100000 $RUNS/alphaedit-10 $RUNS/rome"
$PY -m editbench.report $chosen --plot-norms $chosen --out $OUT/chosen
