#!/usr/bin/env bash
# Table 1 at cpu scale, cell by cell, JOBS at a time (default 2, one torch thread each), resumable:
# a cell with a summary.json is done and skipped; a started one continues after its last checkpoint
# (resume=; one cut off before its first checkpoint starts over); any other starts afresh. Cells
# land in experiments/table1/runs/<method>-<dataset>, the names experiments/table1/cells.sh gives
# the same cells on a lent GPU (experiments/gpu.sh).
# This is `python -m editbench --multirun +experiment=table1` with fixed cell dirs, so that a sweep
# cut off by the end of a session picks up where it stopped. Run from the repo root:
#   bash experiments/table1/run.sh                    # all 16 cells, then the report
#   CELLS="mose-counterfact rome-zsre" bash experiments/table1/run.sh
set -euo pipefail
export PY=${PY:-.venv/bin/python} EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data} OMP_NUM_THREADS=1
RUNS=experiments/table1/runs
one() {  # one <name> <overrides...>: a cell of cells.sh, done / resumed / started
  local name=$1; shift
  local dir=$RUNS/$name extra=()
  [ -f "$dir/summary.json" ] && { echo "$name: done"; return 0; }
  [ -f "$dir/run_config.yaml" ] && extra=(resume="$dir")  # continues after its last checkpoint, if any
  mkdir -p $RUNS
  $PY -m editbench "$@" threads=1 hydra.run.dir="$dir" "${extra[@]}" >> "$dir.log" 2>&1 \
      && echo "$name: finished" || echo "$name: failed, see $dir.log"
}
export -f one; export RUNS
cells=()  # the cells of cells.sh (the GPU script reads the same file), those named in CELLS if set
cell() { [[ -z "${CELLS:-}" || " $CELLS " == *" $1 "* ]] && cells+=("$*"); return 0; }
source experiments/table1/cells.sh
printf '%s\n' "${cells[@]}" | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
$PY -m editbench.report $RUNS --layout paper --out experiments/table1
finished=(); for d in $RUNS/*-counterfact; do [ -f "$d/summary.json" ] && finished+=("$d"); done
$PY -m editbench.report "${finished[@]}" --plot-norms "${finished[@]}" --out experiments/fig2  # Fig. 2: finished cells
