# Cells for experiments/gpu.sh (CELLS=experiments/table1/cells.sh): Table 1 at cpu scale, the same
# overrides as `python -m editbench --multirun +experiment=table1` (200 single-sequential edits,
# eval_at=final), one cell per method and data set, named <method>-<dataset>; run.sh reads it too.
for d in counterfact zsre; do
  for m in rome memit rect emmet prune alphaedit mose mose_oft; do cell $m-$d +experiment=table1 method=$m dataset=$d; done
done
