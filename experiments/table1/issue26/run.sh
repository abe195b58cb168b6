#!/usr/bin/env bash
# Issue 26's re-runs: the four MOSE cells of Table 1 (mose, mose_oft × CounterFact, ZsRE; 200 single-
# sequential edits, eval_at=final) after the fixes (Newton layer scores, det R logged, per-block COFT,
# mose_oft through write_weight), the table of the four, the reflection count (det R = −1) of the two
# MOSE cells, and where MOSE's CounterFact edits went (issue 20). Run from the repo root; resumable.
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-experiments/table1/runs}
OUT=experiments/table1/issue26
$PY -m editbench.cells table1 --runs $RUNS --only '^(mose|mose_oft)-(counterfact|zsre)$' || true  # the report takes what finished
export PYTHONPATH=src:.
cells=(); for c in mose-counterfact mose-zsre mose_oft-counterfact mose_oft-zsre; do
  [ -f "$RUNS/$c/summary.json" ] && cells+=("$RUNS/$c"); done
$PY -m editbench.report "${cells[@]}" --by label dataset --out $OUT
$PY experiments/mose/reflections.py $RUNS/mose-counterfact $RUNS/mose-zsre --out $OUT/reflections.md
$PY experiments/mose/where_edits_go.py $RUNS/mose-counterfact --out experiments/mose/where_edits_go
