# Cells for experiments/cpu.sh and experiments/gpu.sh (CELLS=experiments/fig3/cells.sh): Fig. 3 at cpu
# scale, the overrides of `python -m editbench --multirun +experiment=fig3 downstream=glue` (100
# single-sequential CounterFact edits, RTE and SST-2 by log-likelihood before the first edit, every
# 25 edits and after the last); one cell per method, named after it. On a GPU drop downstream=glue
# for the four generation tasks of the paper (downstream=usual, minutes per evaluation on a CPU).
for m in memit alphaedit prune mose; do cell $m +experiment=fig3 downstream=glue method=$m; done
