#!/usr/bin/env bash
# Issues 5-6 on SmolLM2: immediate reliability of each baseline over 20 single CounterFact edits
# (the cells of cells.sh, through `python -m editbench.cells`: resumable, cells in runs/imm-<method>), then
# the table. The 200-edit single-sequential runs are Table 1's CounterFact cells (experiments/table1).
# Run from the repo root:   bash experiments/baselines/run.sh      ONLY='imm-(memit|rect)' for a subset
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUNS=experiments/baselines/runs
status=0; $PY -m editbench.cells experiments/baselines/cells.sh --runs $RUNS --jobs "${JOBS:-2}" ${ONLY:+--only "$ONLY"} ${SKIP:+--skip "$SKIP"} ${DEADLINE:+--deadline "$DEADLINE"} || status=$?
$PY -m editbench.report $RUNS/imm-* --by method config:method.mom2_update_weight --out experiments/baselines
exit $status
