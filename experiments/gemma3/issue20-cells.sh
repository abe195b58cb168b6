# Cells for the runner, through experiments/gemma3/issue20.sh (it runs them, chooses λ and writes the tables):
# issue 20's second real model. Gemma3-270M (d = 640), CounterFact, the configs of conf/method_model/*_gemma3-270m
# (value lr 2.0) except the swept λ.
# 1. λ on the *train* split (methods.md D5: never tuned on the evaluated split): 20 single-sequential edits,
#    eval_at=final; MOSE's grid extended to 10⁴ (the first Gemma sweep stopped at 10³, at 10 edits and lr 0.5).
lam=(model=gemma3-270m dataset.split=train num_edits=20 eval_at=final)
for l in 10 100 1000 10000; do cell i20-lam-mose-$l method=mose method.mom2_update_weight=$l "${lam[@]}"; done
for l in 100 500 2000 15000; do cell i20-lam-memit-$l method=memit method.mom2_update_weight=$l "${lam[@]}"; done
for l2 in 0.1 1 10 100; do cell i20-lam-alphaedit-$l2 method=alphaedit method.L2=$l2 "${lam[@]}"; done
# 2. 100 single-sequential edits of the evaluated split with the λ the train split chose (MOSE_LAM, MEMIT_LAM,
#    ALPHAEDIT_L2: choose_lambda.py over step 1's cells, best mean R/G/L), eval_at=final.
if [ -n "${MOSE_LAM:-}" ]; then
  e100=(model=gemma3-270m num_edits=100 eval_at=final)
  cell i20-e100-mose method=mose method.mom2_update_weight="$MOSE_LAM" "${e100[@]}"
  cell i20-e100-memit method=memit method.mom2_update_weight="$MEMIT_LAM" "${e100[@]}"
  cell i20-e100-alphaedit method=alphaedit method.L2="$ALPHAEDIT_L2" "${e100[@]}"
fi
# 3. λ at the evaluated horizon for MOSE: its two best values of step 1, 100 *train* edits each (step 2's MOSE at
#    λ = 10 kept its edits over 20 but collapsed locality over 100; README §4); choose_lambda.py ... i20-h100-.
#    MOSE only, on purpose: it is the method in question and the only one whose 100-edit row collapsed; a horizon
#    check can only help it, so a gap that survives it is not an artefact of λ (MEMIT and AlphaEdit keep step 1's λ).
h100=(model=gemma3-270m dataset.split=train num_edits=100 eval_at=final)
for l in 10 100; do cell i20-h100-mose-$l method=mose method.mom2_update_weight=$l "${h100[@]}"; done
# 4. MOSE's other λ on the evaluated split (step 1 chose 10), run beside step 3 (not after it) so that either answer of step 3 has its
#    100 evaluated edits in the same session. Step 3 alone chooses; this row is reported as the sensitivity to λ,
#    never used to choose it.
cell i20-e100-mose-100 method=mose method.mom2_update_weight=100 model=gemma3-270m num_edits=100 eval_at=final
