#!/usr/bin/env bash
# MOSE on SmolLM2 (issue: MOSE). Each block is one artefact; run from the repository root.
# Runs land in experiments/mose/runs/ (ignored); the tables and figures they produce are committed.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data}
OUT=experiments/mose
RUNS=$OUT/runs
common="model=smollm2-135m logger.wandb.mode=offline"

case "${1:-all}" in
lambda|all)
  # λ on the CounterFact *train* split (D5), never on the evaluated split.
  $PY -m editbench --multirun method=mose dataset.split=train num_edits=${LAMBDA_EDITS:-10} \
      method.mom2_update_weight=${LAMBDAS:-1,10,100,1000} $common hydra.sweep.dir=$RUNS/lambda \
      'hydra.sweep.subdir=lambda-${method.mom2_update_weight}'
  $PY -m editbench.report $RUNS/lambda --by override:method.mom2_update_weight --out $OUT/lambda
  ;;&
norms|all)
  # 100 single-sequential edits, eval_at=final: MOSE against the additive ft; Fig. 2 at our scale.
  for m in mose ft; do
    $PY -m editbench method=$m num_edits=${EDITS:-100} $common hydra.run.dir=$RUNS/norms/$m
  done
  $PY -m editbench.report $RUNS/norms --by method --out $OUT/norms --plot-norms $RUNS/norms/mose $RUNS/norms/ft
  ;;&
selection|all)
  # The paper's Fig. 4 ablation at our scale: fixed layer, selected layer, selected + neighbours.
  # select_neighbors is the default, i.e. the norms block's MOSE run: it is read from there.
  for mode in fixed select; do
    $PY -m editbench method=mose method.layer_selection=$mode num_edits=${EDITS:-100} $common \
        hydra.run.dir=$RUNS/selection/$mode
  done
  $PY -m editbench.report $RUNS/selection $RUNS/norms/mose --by config:method.layer_selection --out $OUT/selection
  ;;
capacity-real)
  # Issue 20, capacity on linear memories calibrated on SmolLM2 (README: "Capacity on linear memories").
  # One thread, one process at a time (the machine was shared). MOSE_STEPS: the running Table 1 MOSE cell
  # (its changes are snapshotted into real-keys/changes.csv, which every later run reads).
  # Sizes are what a heavily shared 2-core machine allowed on 2026-11-29 (README says what ran).
  export OMP_NUM_THREADS=1
  CAP=$OUT/capacity-real
  MEM=$RUNS/smollm2-layer4.safetensors
  STEPS=${MOSE_STEPS:-../runs-wt/experiments/table1/runs/mose-counterfact/steps.jsonl}
  PYTHONPATH=src:. $PY $OUT/export_memory.py --layer 4 --n-keys ${N_KEYS:-20} --out $MEM
  cap="PYTHONPATH=src:. $PY $OUT/capacity.py --targets measured --memit-lam 5000@1536 --alpha 10 --null-threshold 0.02"
  eval $cap --real $MEM --keys real --snapshot-changes $STEPS --max-edits 20 --grid 0,1,3,10,20 \
      --mose-lams 1000,15000@4096 --out $CAP/real-keys
  cap="$cap --changes $CAP/real-keys/changes.csv"  # every later run reads that snapshot
  eval $cap --real $MEM --keys gaussian --key-scale auto --max-edits 100 --grid 0,1,10,30,100 --mose-lams 1000 \
      --out $CAP/real-gaussian
  # batch-sequential MOSE (10 edits per solve) against the single edits above
  eval $cap --real $MEM --keys gaussian --key-scale auto --max-edits 100 --grid 0,10,30,100 --mose-lams 1000 \
      --methods mose --batch 10 --out $CAP/real-gaussian-batch10
  # the widths (synthetic memories with layer 4's shapes) moved to capacity-widths below
  ;;
lambda100)
  # Diagnosis of the 100-edit collapse (README, norms section): the same 100 edits at λ = 100,
  # with the GLUE-style downstream tasks. On the evaluated split: not a tuning run (D5).
  $PY -m editbench method=mose method.mom2_update_weight=100 num_edits=${EDITS:-100} downstream=glue $common \
      hydra.run.dir=$RUNS/lambda100/mose
  ;;
capacity-widths)
  # Issue 20's capacity figure: one curve per d (576, 1024, 2048, 4096; m = 8/3·d), MOSE (λ/d of our 1000@576 and of
  # the released 15000@4096) against MEMIT (λ/m fixed) and AlphaEdit, N up to 4000, widths.png + results.csv.
  # Batch-sequential at b = d/10 edits per solve (one 4096² SVD per MOSE step); the batch check at d = 576 runs the
  # same 1000 edits at b = 1 and b = 58. 200 real keys set the key scale (N_KEYS; 2.5 min to export).
  # 2026-11-29, one thread beside two 1-thread cells on 2 cores: 60 min, 52 of them the widths line (d = 4096's two
  # MOSE curves 26 min); DIMS=576,1024,2048 ≈ 10 min. `capacity.py --from-results DIR/results.csv --out DIR` redraws.
  export OMP_NUM_THREADS=1
  CAP=$OUT/capacity-real
  MEM=$RUNS/smollm2-layer4-${N_KEYS:-200}keys.safetensors  # capacity-real's file holds the first 20 of these
  [ -f $MEM ] || PYTHONPATH=src:. $PY $OUT/export_memory.py --layer 4 --n-keys ${N_KEYS:-200} --out $MEM
  cap="PYTHONPATH=src:. $PY $OUT/capacity.py --targets measured --changes $CAP/real-keys/changes.csv \
       --memit-lam 5000@1536 --alpha 10 --null-threshold 0.02"
  eval $cap --real $MEM --keys real --max-edits 200 --grid 0,1,3,10,30,100,200 --mose-lams 1000,15000@4096 \
      --out $CAP/real-keys-200
  for b in 1 58; do
    eval $cap --shape $MEM --key-scale auto --dims 576 --batch $b --max-edits 1000 --grid 0,10,100,300,1000 \
        --mose-lams 1000@576 --out $CAP/batch-check-b$b
  done
  eval $cap --shape $MEM --key-scale auto --dims ${DIMS:-576,1024,2048,4096} --batch 0.1d --max-edits 4000 \
      --grid 0,10,100,300,1000,2000,4000 --mose-lams 1000@576,15000@4096 --out $CAP/widths
  ;;
coft)
  # Issue 20, mose_oft's COFT radius both ways in Table 1's CounterFact cell (README audit section): the released
  # constant is Table 1's own cell (`make table1`, TABLE1_RUNS), the fair port ε = 2.85e-4 is coft_cells.sh's.
  $PY -m editbench.cells $OUT/coft_cells.sh --runs $RUNS/coft --only '^coft-port-counterfact$'
  $PY -m editbench.report ${TABLE1_RUNS:-experiments/table1/runs}/mose_oft-counterfact $RUNS/coft/coft-port-counterfact \
      --by config:method.coft_eps --out $OUT/coft
  ;;
variants)
  # Issue 20, MOSE variants within the paper's freedom (README "Variants"): method.targets = spread (default)
  # | own, on the CounterFact *train* split (never the evaluated one), single-sequential, one thread each.
  # eval_at=[10,20]: all edits so far are also scored after steps 10 and 20 (the final protocol for the first
  # 10 / 20 edits, as a run of that length would give); the summary is the final model's, as eval_at=final.
  export OMP_NUM_THREADS=1
  for t in spread own; do
    $PY -m editbench method=mose method.targets=$t dataset.split=train num_edits=${EDITS:-30} 'eval_at=[10,20]' \
        threads=1 $common hydra.run.dir=$RUNS/variants/targets-$t &
  done
  wait
  $PY -m editbench.report $RUNS/variants --by label --out $OUT/variants
  $PY experiments/mose/variants/by_step.py $RUNS/variants/targets-* --out $OUT/variants/by_step.md
  ;;
esac
