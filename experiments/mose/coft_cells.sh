# Cells for `python -m editbench.cells` / experiments/gpu.sh (CELLS=experiments/mose/coft_cells.sh): the COFT radius of mose_oft
# ported to SmolLM2 (issue 20; README "The COFT radius does not port"). ε·(m/r)²/√r with the released
# ε = 1e-5 is 0.737 here, 64.2 on LLaMA3-8B; the three ports keep, respectively, the RMS per entry
# (9.33e-5), the radius relative to the block, ρ/√b (2.85e-4, "the fair port"), and the absolute ρ (8.71e-4).
# 1. The fair port in Table 1's cell (evaluated split, 200 edits): chosen by the rule above, not by a score.
cell coft-port-counterfact +experiment=table1 method=mose_oft dataset=counterfact method.coft_eps=2.85e-4
# 2. The four values on the CounterFact *train* split (D5), 100 single-sequential edits, eval_at=final.
for eps in 1e-5 9.33e-5 2.85e-4 8.71e-4; do
  cell coft-train-$eps method=mose_oft dataset.split=train num_edits=100 method.coft_eps=$eps
done
