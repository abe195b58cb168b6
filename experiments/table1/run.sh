#!/usr/bin/env bash
# Table 1 at cpu scale: the cells of cells.sh (one per method and data set, single-sequential,
# eval_at=final: 200 edits of CounterFact and ZsRE, all 112 of the concept set) through experiments/cpu.sh (JOBS at a time, resumable, cell dirs
# runs/<method>-<dataset>), then the table and Fig. 2 from the finished cells. The same cells run
# on a lent GPU with experiments/gpu.sh. This is `python -m editbench --multirun +experiment=table1`
# with fixed cell dirs, so that a sweep cut off by the end of a session picks up where it stopped.
# Run from the repo root:
#   bash experiments/table1/run.sh                              # all 24 cells, then the report
#   ONLY='^(mose|rome)-zsre$' JOBS=3 bash experiments/table1/run.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUNS=experiments/table1/runs
CELLS=experiments/table1/cells.sh RUNS=$RUNS bash experiments/cpu.sh
$PY -m editbench.report $RUNS --layout paper --out experiments/table1 \
    --title "Table 1 at cpu scale (the paper: LLaMA3-8B and Qwen2.5-7B, 4,000 edits)"
# Norm and condition-number trajectories of the finished cells: CounterFact is Fig. 2, ZsRE and the
# concept set the matrix columns of the README's tables.
for pair in counterfact:experiments/fig2 zsre:experiments/table1/norms-zsre conceptedit:experiments/table1/norms-conceptedit; do
  finished=(); for d in $RUNS/*-"${pair%%:*}"; do [ -f "$d/summary.json" ] && finished+=("$d"); done
  if [ ${#finished[@]} -gt 0 ]; then $PY -m editbench.report "${finished[@]}" --plot-norms "${finished[@]}" --out "${pair#*:}"; fi
done
