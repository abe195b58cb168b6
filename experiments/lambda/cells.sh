# Cells for experiments/gpu.sh (CELLS=experiments/lambda/cells.sh): the commands of run.sh, 100
# edits of the CounterFact train split scored after 25, 50 and 100, plus the immediate-reliability
# checks of experiments/baselines (20 edits of the evaluated split, each scored right after it).
lam=(dataset.split=train num_edits=${EDITS:-100} "eval_at=${EVAL_AT:-[25,50]}")
for l in 10 100 1000 10000; do cell mose-$l method=mose method.mom2_update_weight=$l "${lam[@]}"; done
for l in 2000 5000 10000; do cell memit-$l method=memit method.mom2_update_weight=$l "${lam[@]}"; done
for l in 10000 100000; do cell emmet-$l method=emmet method.mom2_update_weight=$l "${lam[@]}"; done
for l2 in 1 10; do cell alphaedit-$l2 method=alphaedit method.L2=$l2 "${lam[@]}"; done
cell rome method=rome "${lam[@]}"
source experiments/baselines/cells.sh  # the imm-* cells, in the same GPU lease
