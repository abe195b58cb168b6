# Cells for experiments/cpu.sh and experiments/gpu.sh (CELLS=experiments/table2/cells.sh): Table 2 at
# cpu scale, the overrides of `python -m editbench --multirun +experiment=table2` (batch size 10,
# eval_at=final; 7 steps = 70 edits per cell on both data sets: conf/scale/cpu.yaml, sized in
# README.md), one cell per method and data set, named <method>-<dataset>.
# The paper's column groups: CounterFact and ConceptEdit-Inter (dataset=conceptedit, setting inter).
#
# EMMET's λ and AlphaEdit's L2 at batch size 10: λ cancels for single edits but not in batches
# (experiments/lambda/README.md), so the batch value is chosen on the CounterFact *train* split at
# batch size 10 by lambda-cells.sh (never on the evaluated split; methods.md D5). Until that check has
# run, these are the single-edit values (the references' 10⁵ and 10). Its result goes to
# experiments/table2/lambda/report.md, here, and beside the model's config in
# src/editbench/conf/method_model/{emmet,alphaedit}_smollm2-135m.yaml.
batch=(emmet:method.mom2_update_weight=100000 alphaedit:method.L2=10)
for d in counterfact conceptedit; do
  for m in rome memit rect emmet prune alphaedit mose mose_oft; do
    extra=(); for b in "${batch[@]}"; do [ "${b%%:*}" = "$m" ] && extra+=("${b#*:}"); done
    cell $m-$d +experiment=table2 method=$m dataset=$d dataset.setting=inter "${extra[@]}"
  done
done
