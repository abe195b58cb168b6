#!/usr/bin/env bash
# Gemma3-270M after issue 24 (post-FFN norm mapped, methods.md D14): the issue's table re-run, the train-split
# checks that chose conf/method_model/*_gemma3-270m.yaml, and 20 single-sequential edits per method.
# Cells: cells.sh, through `python -m editbench.cells` (JOBS at a time, resumable) or, on a lent GPU,
# CELLS=experiments/gemma3/cells.sh bash experiments/gpu.sh. Run from the repo root:
#   bash experiments/gemma3/run.sh                 # every cell, then the tables
#   ONLY='^issue-' bash experiments/gemma3/run.sh  # the issue's three runs only (a few minutes each)
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=experiments/gemma3 RUNS=experiments/gemma3/runs
status=0; $PY -m editbench.cells $OUT/cells.sh --runs $RUNS --jobs "${JOBS:-2}" ${ONLY:+--only "$ONLY"} ${SKIP:+--skip "$SKIP"} ${DEADLINE:+--deadline "$DEADLINE"} || status=$?
report() {  # report <out> <by...> -- <run dirs>: only the finished ones (a report of nothing is skipped)
  local out=$1; shift; local by=(); while [ "$1" != -- ]; do by+=("$1"); shift; done; shift
  local done=(); for d in "$@"; do [ -f "$d/summary.json" ] && done+=("$d"); done
  (( ${#done[@]} )) && $PY -m editbench.report "${done[@]}" --by "${by[@]}" --out "$out" > /dev/null || true
}
report $OUT/issue method config:method.value.lr -- $RUNS/issue-*
report $OUT/lambda method config:method.mom2_update_weight config:method.L2 config:method.mom2_adjustment \
  config:method.value.lr -- $RUNS/lam-*
report $OUT/edit20 label -- $RUNS/edit20-*
exit $status
