# Cells for `python -m editbench.cells` / experiments/gpu.sh (CELLS=experiments/table2/lambda-cells.sh): the train-split
# check of the two λs that matter only in batches, at Table 2's CounterFact batch size and length (batch 10,
# 20 steps = 200 edits of counterfact-train.json, scored after steps 7, 14 and the last; step 7 is the 70-edit
# check this file ran before the table grew; methods.md D5: tuned on train, never on the evaluated split).
# Named <method>-<value>. 6 cells of ≈ 25 min each on one thread here (EMMET: 65 s per step of 10, 2026-12-08).
# `run.sh lambda` writes lambda/report.md, and the chosen values go to
# conf/method_model_batch/{emmet,alphaedit}_smollm2-135m.yaml (Table 2 reads them there).
lam=(+experiment=table2 dataset=counterfact dataset.split=train "eval_at=[7,14]")
for l in 10000 100000 1000000; do cell emmet-$l method=emmet method.mom2_update_weight=$l "${lam[@]}"; done
for l2 in 1 10 100; do cell alphaedit-$l2 method=alphaedit method.L2=$l2 "${lam[@]}"; done
