"""Pre-edit general abilities of SmolLM2 with their wall time (issue 7), stored in the pre-edit cache
that every later run and `python -m editbench.posthoc` reuse. Run from the repository root:
    OMP_NUM_THREADS=1 .venv/bin/python experiments/downstream/pre_edit.py > experiments/downstream/pre_edit.json
"""

import json
import sys
import time

import torch

from editbench.config import compose
from editbench.data import resolve_data_dir
from editbench.loop.downstream import downstream_scores
from editbench.models.loading import load_model

cfg = compose(["model=smollm2-135m", "downstream=usual", *sys.argv[1:]])
torch.set_num_threads(int(cfg.threads or 1))
lm = load_model(cfg.model)
t0 = time.perf_counter()
scores = downstream_scores(cfg.downstream, lm, resolve_data_dir(cfg.data_dir), int(cfg.seed), pre_edit=True)
print(json.dumps({"model": lm.name, "threads": torch.get_num_threads(), "wall_seconds": round(time.perf_counter() - t0, 1),
                  "scores": scores}, indent=1))
