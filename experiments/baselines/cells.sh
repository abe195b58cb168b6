# Cells of the immediate-reliability check (issues 5-6), for `python -m editbench.cells` (run.sh) and
# experiments/gpu.sh: each baseline edits the first 20 records of the evaluated CounterFact split
# one after the other, each edit scored right after it (eval_at=immediate), SmolLM2 configs.
for m in rome memit emmet rect prune alphaedit; do cell imm-$m method=$m num_edits=20 eval_at=immediate; done
