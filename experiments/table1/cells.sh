# Cells for experiments/gpu.sh (CELLS=experiments/table1/cells.sh): Table 1 at cpu scale, the same
# overrides as `python -m editbench --multirun +experiment=table1` (eval_at=final, single-sequential:
# 200 edits of CounterFact and ZsRE, all 112 records of the concept set: conf/scale/cpu.yaml), one
# cell per method and data set, named <method>-<dataset>; run.sh reads it too. The paper's groups are
# CounterFact and ConceptEdit-Inter (dataset=conceptedit, setting inter; offline the project's concept
# set in ConceptEdit's schema); ZsRE is our extra group.
for d in counterfact zsre conceptedit; do
  setting=(); [ $d = conceptedit ] && setting=(dataset.setting=inter)
  for m in rome memit rect emmet prune alphaedit mose mose_oft; do cell $m-$d +experiment=table1 method=$m dataset=$d "${setting[@]}"; done
done
