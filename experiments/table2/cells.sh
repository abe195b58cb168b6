# Cells for experiments/cpu.sh and experiments/gpu.sh (CELLS=experiments/table2/cells.sh): Table 2 at
# cpu scale, the overrides of `python -m editbench --multirun +experiment=table2` (20 steps of 10
# edits, eval_at=final), one cell per method and data set, named <method>-<dataset>.
for d in counterfact zsre; do
  for m in rome memit rect emmet prune alphaedit mose mose_oft; do cell $m-$d +experiment=table2 method=$m dataset=$d; done
done
