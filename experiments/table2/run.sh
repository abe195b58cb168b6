#!/usr/bin/env bash
# Table 2's train-split λ check at batch size 10 (lambda-cells.sh, cell dirs lambda/runs/, tables in
# lambda/ and lambda/alphaedit/); choose_lambda.py writes the chosen values into conf/method_model_batch/.
# Table 2 itself is `make table2` (the cells of conf/experiment/table2.yaml, then the table). Run from the repo root:
#   bash experiments/table2/run.sh lambda          (JOBS, ONLY, SKIP, DEADLINE as for make)
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=experiments/table2
[ "${1:-}" = lambda ] || { echo "usage: bash experiments/table2/run.sh lambda   (Table 2 itself: make table2)"; exit 7; }
status=0
$PY -m editbench.cells $OUT/lambda-cells.sh --runs $OUT/lambda/runs --jobs "${JOBS:-2}" ${ONLY:+--only "$ONLY"} \
    ${SKIP:+--skip "$SKIP"} ${DEADLINE:+--deadline "$DEADLINE"} || status=$?
$PY -m editbench.report $OUT/lambda/runs/emmet-* --by method config:method.mom2_update_weight --out $OUT/lambda
$PY -m editbench.report $OUT/lambda/runs/alphaedit-* --by method config:method.L2 --out $OUT/lambda/alphaedit
# the choice (best mean of R / G / L, experiments/choose.py) into conf/method_model_batch/, for the finished grids
PYTHONPATH=src:. $PY $OUT/choose_lambda.py $OUT/lambda-cells.sh $OUT/lambda/runs
exit $status
