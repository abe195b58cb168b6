#!/usr/bin/env bash
# Cells of an experiment on this machine's CPU, JOBS at a time (default 2, one torch thread each),
# resumable; the CPU twin of experiments/gpu.sh, reading the same cells files (`cell <name>
# <overrides...>` lines). Each cell is one `python -m editbench` run in RUNS/<name> (log next to
# it): a cell with a summary.json is done and skipped; a started one (run_config.yaml) continues
# after its last checkpoint (resume=; one cut off before its first checkpoint starts over); any
# other starts afresh. So a sweep cut off by the end of a session picks up where it stopped.
# This is what `python -m editbench --multirun ...` does, with fixed cell dirs. Run from the repo root:
#   CELLS=experiments/table1/cells.sh RUNS=experiments/table1/runs bash experiments/cpu.sh
#   ... ONLY='^(rect|prune)-counterfact$' JOBS=3 ...      # the cells whose names match a regex
#   ... SKIP='^imm-' ...                                  # all but the cells whose names match one
set -euo pipefail
[ -n "${CELLS:-}" ] && [ -f "$CELLS" ] || { echo "CELLS=experiments/<artefact>/cells.sh names no file"; exit 7; }
[ -n "${RUNS:-}" ] || { echo "RUNS=<folder for the cell dirs> is not set"; exit 7; }
export PY=${PY:-.venv/bin/python} EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data} OMP_NUM_THREADS=1 RUNS
one() {  # one <name> <overrides...>: a cell, done / resumed / started
  local name=$1; shift
  local dir=$RUNS/$name extra=()
  [ -f "$dir/summary.json" ] && { echo "$name: done"; return 0; }
  [ -f "$dir/run_config.yaml" ] && extra=(resume="$dir")
  $PY -m editbench "$@" threads=1 hydra.run.dir="$dir" "${extra[@]}" >> "$dir.log" 2>&1 \
      && echo "$name: finished" || echo "$name: failed, see $dir.log"
}
export -f one
cells=()
cell() { [[ $1 =~ ${ONLY:-.} ]] && ! [[ -n ${SKIP:-} && $1 =~ $SKIP ]] && cells+=("$*"); return 0; }
# shellcheck source=/dev/null
source "$CELLS"
(( ${#cells[@]} )) || { echo "no cell of $CELLS matches ONLY='${ONLY:-}' SKIP='${SKIP:-}'"; exit 7; }
mkdir -p "$RUNS"
printf '%s\n' "${cells[@]}" | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
