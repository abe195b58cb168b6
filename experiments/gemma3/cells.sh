# Cells for experiments/cpu.sh / gpu.sh (CELLS=experiments/gemma3/cells.sh): model=gemma3-270m.
# 1. The issue-24 table (the evaluated split, the issue's exact settings, i.e. before conf/method_model/*_gemma3-270m
#    existed: MEMIT/ROME layers [3..7]/[4] at λ 15000, MOSE λ 10 over candidates [2..10]).
g=(model=gemma3-270m)
cell issue-memit method=memit num_edits=3 eval_at=immediate "${g[@]}" "method.layers=[3,4,5,6,7]" method.mom2_update_weight=15000
cell issue-rome method=rome num_edits=3 eval_at=immediate "${g[@]}" "method.layers=[4]"
cell issue-mose method=mose num_edits=5 "${g[@]}" "method.candidate_layers=[2,3,4,5,6,7,8,9,10]" method.mom2_update_weight=10
# 2. λ / L2 sweeps on the CounterFact *train* split (D5) at 100 single-sequential edits, scored after 25, 50, 100.
lam=(dataset.split=train num_edits=${EDITS:-100} "eval_at=${EVAL_AT:-[25,50]}" "${g[@]}")
for l in 500 2000 5000 15000; do cell gemma-memit-$l method=memit method.mom2_update_weight=$l "${lam[@]}"; done
for l2 in 1 10 100; do cell gemma-alphaedit-$l2 method=alphaedit method.L2=$l2 "${lam[@]}"; done
for l in 10 100 1000 10000; do cell gemma-mose-$l method=mose method.mom2_update_weight=$l "${lam[@]}"; done
cell gemma-rome method=rome "${lam[@]}"
cell gemma-rome-mom2 method=rome method.mom2_adjustment=true "${lam[@]}"
