# Cells for experiments/cpu.sh and experiments/gpu.sh (CELLS=experiments/fig4/cells.sh): Fig. 4 at cpu
# scale, the overrides of `python -m editbench --multirun +experiment=fig4` (MOSE, 100 single-sequential
# CounterFact edits, eval_at=final), one cell per layer-selection mode. The default mode,
# select_neighbors, is the same run as Fig. 3's MOSE cell (downstream scoring does not touch the
# weights), so run.sh reads it from experiments/fig3/runs/mose instead of editing twice.
for mode in fixed select; do cell $mode +experiment=fig4 method.layer_selection=$mode; done
