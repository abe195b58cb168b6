#!/usr/bin/env bash
# λ sweeps for SmolLM2 at 100 single-sequential edits on the CounterFact *train* split (methods.md D5:
# tune on train, never on the evaluated split; at the sequence length that is evaluated, since a λ
# chosen on 10 edits did not hold at 100, experiments/mose/README.md). The cells are cells.sh's
# (<method>-<λ>, or alphaedit-<L2>), run through `python -m editbench.cells` (JOBS at a time, resumable);
# the same cells run on a lent GPU with CELLS=experiments/lambda/cells.sh bash experiments/gpu.sh,
# which also takes the imm-* cells of experiments/baselines in the same lease (run.sh skips those:
# experiments/baselines/run.sh runs them here). Run from the repo root:
#   bash experiments/lambda/run.sh                  # every sweep, then the tables
#   ONLY='^mose-' bash experiments/lambda/run.sh    # one method's cells
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=experiments/lambda RUNS=experiments/lambda/runs
status=0; $PY -m editbench.cells $OUT/cells.sh --runs $RUNS --skip '^imm-' --jobs "${JOBS:-2}" ${ONLY:+--only "$ONLY"} ${SKIP:+--skip "$SKIP"} ${DEADLINE:+--deadline "$DEADLINE"} || status=$?
# One row per method and λ (report.md); AlphaEdit's cells differ in L2, not λ, so they get their own table.
$PY -m editbench.report $RUNS/{mose,memit,emmet}-* $RUNS/rome* --by method config:method.mom2_update_weight --out $OUT
$PY -m editbench.report $RUNS/alphaedit-* --by method config:method.L2 --out $OUT/alphaedit
# The chosen value of each method side by side, with Fig. 2's norm and condition-number trajectories.
chosen="$RUNS/mose-1000 $RUNS/memit-5000 $RUNS/emmet-100000 $RUNS/alphaedit-10 $RUNS/rome"
$PY -m editbench.report $chosen --plot-norms $chosen --out $OUT/chosen
exit $status
