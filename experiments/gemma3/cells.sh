# Cells for `python -m editbench.cells` / experiments/gpu.sh (CELLS=experiments/gemma3/cells.sh): model=gemma3-270m, CounterFact.
g=(model=gemma3-270m)
# 1. The issue-24 table re-run after the fix (evaluated split, the issue's exact commands, i.e. the method
#    defaults before conf/method_model/*_gemma3-270m existed: MEMIT/ROME layers [3..7]/[4] at λ 15000, MOSE λ 10
#    over candidates [2..10]).
cell issue-memit method=memit num_edits=3 eval_at=immediate "${g[@]}" "method.layers=[3,4,5,6,7]" method.mom2_update_weight=15000 method.value.lr=0.5
cell issue-rome method=rome num_edits=3 eval_at=immediate "${g[@]}" "method.layers=[4]" method.value.lr=0.5
cell issue-mose method=mose num_edits=5 "${g[@]}" "method.candidate_layers=[2,3,4,5,6,7,8,9,10]" method.mom2_update_weight=10 method.value.lr=0.5
# 2. λ / L2 on the CounterFact *train* split (D5) at a small length: 10 single-sequential edits, eval_at=final.
#    A CPU budget, not the 100 edits of SmolLM2's sweep (experiments/lambda): Gemma3 edits take 25-45 s here.
lam=(dataset.split=train num_edits=${EDITS:-10} "${g[@]}")
grid=("${lam[@]}" method.value.lr=0.5)  # the λ grids ran at the SmolLM2 z* lr; the configs now say 2.0 (see below)
for l in 500 2000 15000; do cell lam-memit-$l method=memit method.mom2_update_weight=$l "${grid[@]}"; done
#    Both best values were at the bottom of the first grid, so the grid goes one step lower; and z* ends far above
#    early_stop on Gemma3 (its residual norms are ~100× SmolLM2's, Adam's steps are not), so a larger value lr.
cell lam-memit-100 method=memit method.mom2_update_weight=100 "${grid[@]}"
cell lam-memit-500-lr2 method=memit method.mom2_update_weight=500 method.value.lr=2.0 "${lam[@]}"
cell lam-alphaedit-0.1 method=alphaedit method.L2=0.1 "${grid[@]}"
for l2 in 1 10 100; do cell lam-alphaedit-$l2 method=alphaedit method.L2=$l2 "${grid[@]}"; done
#    MOSE: 100 beat 1000 on reliability (70 vs 5), so the grid went down to 10 instead of up to 10⁴ (stopped).
for l in 10 100 1000; do cell lam-mose-$l method=mose method.mom2_update_weight=$l "${grid[@]}"; done
#    ROME's u = k* (the default here) against u = C0⁻¹k* (mom2_adjustment, the ROME paper's eq. 2): Gemma3's
#    keys share a large common direction, so the plain rank-one update reaches every key (issue 24: L = 33).
for adj in false true; do cell lam-rome-mom2-$adj method=rome method.mom2_adjustment=$adj "${lam[@]}"; done
# 3. 20 single-sequential edits per method (evaluated split) with the chosen settings: eval_at=immediate scores
#    each edit right after it, and the run also scores all 20 on the final model (summary after_last_edit).
for m in rome memit emmet rect prune alphaedit mose mose_oft ft; do
  cell edit20-$m method=$m num_edits=20 eval_at=immediate "${g[@]}"
done
