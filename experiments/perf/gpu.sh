#!/usr/bin/env bash
# The GPU half of experiments/perf (issue 4), as run on a lent H100 through the device tool.
# SmolLM2's architecture and tokenizer with random weights (model=random: the weights do not fit
# the 64 MiB a lent machine takes), on CUDA. Needs, under .dev/ (git-ignored, carried):
#   model/smollm2/  config.json + tokenizer files of the SmolLM2 cache dir
#   data/           counterfact-edit.json, the ROME sample, wikitext2 (from ../shared/data)
#   whl/            hydra-core, omegaconf, antlr4-python3-runtime, transformers, huggingface_hub wheels
# Usage: OUT=<dir> bash experiments/perf/gpu.sh [quick]
set -uo pipefail
export PYTHONUNBUFFERED=1 EDITBENCH_DATA=$PWD/.dev/data EDITBENCH_CACHE=/tmp/ebcache HF_HUB_OFFLINE=1
PY=${PY:-python3}
if [ -d .dev/whl ] && [ "${SKIP_WHEELS:-0}" != 1 ]; then
  rm -rf /tmp/site; $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dev/whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}
DEVICE=${DEVICE:-cuda}
M="--model random --set model.path=$PWD/.dev/model/smollm2 --device $DEVICE"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
if [ "${1:-}" = quick ]; then  # a minute-long check of the plumbing
  $PY -m editbench.bench $M --methods mose --edits 1 --batch-sizes 1 --values-requests 1 --values-steps 2 \
      --set stats.n_tokens=2000 --out /tmp/bench-quick && cp /tmp/bench-quick/bench.md "$OUT/quick.md"
  exit
fi
# 1. the value optimisation: variants, FLOPs, floor (float32, then bf16)
$PY -m editbench.bench $M --dtype float32 --sections values --values-requests 4 --repeats 3 --out /tmp/b-values-f32 \
  && cp /tmp/b-values-f32/bench.md "$OUT/values-f32.md" && cp /tmp/b-values-f32/bench.json "$OUT/values-f32.json"
$PY -m editbench.bench $M --dtype bfloat16 --sections values --values-requests 4 --repeats 3 --out /tmp/b-values-bf16 \
  && cp /tmp/b-values-bf16/bench.md "$OUT/values-bf16.md"
# 2. per-method split and MOSE's batch scaling (float32)
$PY -m editbench.bench $M --dtype float32 --sections methods,scaling --methods mose,memit,ft --edits 16 \
    --batch-sizes 1,16,64 --out /tmp/b-methods \
  && cp /tmp/b-methods/bench.md "$OUT/methods-f32.md" && cp /tmp/b-methods/bench.json "$OUT/methods-f32.json"
# 3. a long single-sequential MOSE run: time per edit vs edits done
timeout "${LONG_SECONDS:-150}" $PY -m editbench method=mose num_edits=${LONG_EDITS:-300} model=random \
    model.path=$PWD/.dev/model/smollm2 model.device=$DEVICE logger.wandb.mode=disabled hydra.run.dir=/tmp/mose-long \
    > /tmp/mose-long.log 2>&1
$PY -m editbench.bench --from-run /tmp/mose-long > "$OUT/mose-long.md" 2>&1 || cp /tmp/mose-long/steps.jsonl "$OUT/" 2>/dev/null
tail -3 /tmp/mose-long.log
ls -la "$OUT"
