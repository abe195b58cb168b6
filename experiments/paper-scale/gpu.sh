#!/usr/bin/env bash
# The GPU measurement (issue 21): every method on full-depth random LLaMA3-8B and Qwen2.5-7B in bf16,
# 2 single edits and one batch of 10 each, the paper's value steps; peak GPU memory, C0 time, the
# dense linear algebra at the real widths. About 10 minutes of one H100/H200 for both models.
# Needs nothing but this checkout (random weights, the tiny tokenizer, the CounterFact demo set in the
# package unless EDITBENCH_DATA is set); results land in experiments/paper-scale/gpu-<model>/ (or $OUT).
#   bash experiments/paper-scale/gpu.sh              # on the device tool: run(command="bash experiments/paper-scale/gpu.sh")
# Each model gets BUDGET seconds (default 280); what finished by then is in its report.
set -uo pipefail
PY=${PY:-python3}
export PYTHONPATH=$PWD/src:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export EDITBENCH_CACHE=${EDITBENCH_CACHE:-/tmp/ebcache-paper}
DEST=${OUT:-experiments/paper-scale}
BUDGET=${BUDGET:-280}
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" || exit 3
nvidia-smi --query-gpu=name,memory.total --format=csv || true
for model in llama3-8b qwen2.5-7b; do
  # MOSE's candidates cut to three (C0 on disk: 1.6 GB per layer at d_ff 14336, 2.9 GB at 18944);
  # AlphaEdit's P by the low-rank route (C0 of 4096 tokens has rank < d_ff); the m×m eigh is timed once
  # among the kernels at the real width.
  timeout "$BUDGET" $PY experiments/paper-scale/measure.py --model "$model" --device cuda --batch 10 --single 2 \
      --n-tokens 4096 --low-rank-projector --mose-candidates 5,7,9 --out "$DEST/gpu-$model" \
      || echo "$model: stopped (budget ${BUDGET}s or error); the report holds what finished"
  rm -rf "$EDITBENCH_CACHE"  # 64 GB disk: the next model's C0 needs the room
done
