#!/usr/bin/env bash
# General abilities after 100 sequential CounterFact edits on SmolLM2 (issue 7): MOSE against MEMIT.
# The four USTC generation tasks (n=100 each) plus the GLUE-style log-likelihood RTE / SST-2, before
# the first edit and after the last; retention = after / before. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export EDITBENCH_DATA=${EDITBENCH_DATA:-../shared/data}
OUT=experiments/downstream
for m in ${METHODS:-memit mose}; do
  $PY -m editbench method=$m num_edits=${EDITS:-100} model=smollm2-135m downstream=usual \
      'downstream.tasks=[rte,sst2,nq,samsum,rte_ll,sst2_ll]' logger.wandb.mode=offline \
      hydra.run.dir=$OUT/runs/$m
done
$PY -m editbench.report $OUT/runs --by method --out $OUT
