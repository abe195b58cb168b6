"""`python -m editbench.posthoc <run_dir> [<run_dir> ...] [overrides]`: general abilities, after the fact.

A run's downstream tasks are chosen before it starts. This evaluates the weights finished runs
ended with (each run's last checkpoint, then the method's `finalize`, e.g. PRUNE's restraint) on
tasks chosen now, next to the pre-edit model, without editing again. The pre-edit model is scored
once and shared by every run given (they must use the same model). Per run dir it appends one
record per task and model state to `downstream_posthoc.jsonl` (step 0 = pre-edit) and writes
`downstream_posthoc.json` (the last scores and retention ratios), which the report shows as `ds:`
columns. Overrides are Hydra overrides of the `downstream` group, `threads=` and `data_dir=`
(default: the data directory the first run read):

    python -m editbench.posthoc experiments/downstream/runs/mose experiments/downstream/runs/memit \\
        downstream=usual downstream.n_examples=100 'downstream.tasks=[rte,sst2,nq,samsum]'
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from editbench import checkpoint
from editbench.build import build_method, second_moments
from editbench.config import compose
from editbench.data import resolve_data_dir
from editbench.errors import ConfigError
from editbench.io import write_json
from editbench.loop.downstream import downstream_last, downstream_scores
from editbench.models.loading import load_model
from editbench.sinks import JsonlSink

log = logging.getLogger(__name__)
RECORDS, LAST = "downstream_posthoc.jsonl", "downstream_posthoc.json"


def run_config(run_dir: Path) -> DictConfig:
    path = run_dir / checkpoint.RUN_CONFIG
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no {checkpoint.RUN_CONFIG}: give the directory of a run editbench wrote")
    return OmegaConf.load(path)


def _run_data_dir(run_dir: Path) -> str | None:
    """The data directory the run read (its summary records it); None: $EDITBENCH_DATA decides."""
    summary = run_dir / "summary.json"
    return json.loads(summary.read_text()).get("data_dir") if summary.is_file() else None


def evaluate_runs(run_dirs: list[Path], overrides: list[str]) -> dict[str, dict]:
    """Pre-edit scores once, then each run's final weights; returns {run_dir: last scores + retention}."""
    from evaluation.downstream import retention

    own = {k: v for k, _, v in (o.partition("=") for o in overrides) if k in ("data_dir", "threads")}
    ds = compose([o for o in overrides if o.partition("=")[0] not in own]).downstream
    if not ds.get("tasks"):
        raise ConfigError("no downstream tasks: add e.g. downstream=usual or 'downstream.tasks=[rte,sst2]'")
    cfgs = [run_config(d) for d in run_dirs]
    models = {json.dumps(OmegaConf.to_container(c.model, resolve=True), sort_keys=True) for c in cfgs}
    if len(models) != 1:
        raise ConfigError("the runs use different models; evaluate each model's runs in a separate call")
    base = cfgs[0]
    if own.get("threads"):
        torch.set_num_threads(int(own["threads"]))
    data_dir = resolve_data_dir(own.get("data_dir") or _run_data_dir(run_dirs[0]))
    lm = load_model(base.model)

    t0 = time.perf_counter()
    before = downstream_scores(ds, lm, data_dir, int(base.seed), pre_edit=True)  # cached, like the runs' step 0
    log.info("pre-edit scores in %.0f s: %s", time.perf_counter() - t0, {t: r["score"] for t, r in before.items()})
    out = {}
    for run_dir, cfg in zip(run_dirs, cfgs, strict=True):
        ckpt = checkpoint.load(run_dir)
        if ckpt is None:
            raise ConfigError(f"{run_dir} has no {checkpoint.CHECKPOINT} (run it with checkpoint_every >= 1)")
        groups = json.loads((run_dir / "context_templates.json").read_text())
        editor = build_method(cfg, lm, second_moments(cfg, lm, data_dir), groups)
        checkpoint.restore(ckpt, editor, editor.ctx)
        editor.finalize()  # what the run did after its last step (PRUNE post_hoc restrains here)
        after = downstream_scores(ds, lm, data_dir, int(base.seed), pre_edit=False)
        ratios = retention(after, before)
        meta = {"method": cfg.method.name, "model": lm.name, "seed": int(cfg.seed), "posthoc": True,
                "edit_step": ckpt.step, "num_edits": int(cfg.num_edits)}
        sink = JsonlSink(run_dir / RECORDS)
        try:
            for step, state in ((0, before), (ckpt.step, after)):
                for task, result in state.items():
                    sink.write({**meta, "step": step, "task": task, **result,
                                "retention": ratios.get(task) if step else 1.0})
        finally:
            sink.close()
        last = downstream_last(ckpt.step, after, ratios)
        write_json(run_dir / LAST, last)
        out[str(run_dir)] = last
        for layer, original in editor.ctx.originals.items():  # back to W0 for the next run
            lm.spec.set_weight(lm.model, layer, original)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m editbench.posthoc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("args", nargs="+", help="run dirs, then downstream overrides (key=value)")
    ns = parser.parse_args(argv)
    run_dirs = [Path(a) for a in ns.args if "=" not in a]
    overrides = [a for a in ns.args if "=" in a]
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    try:
        results = evaluate_runs(run_dirs, overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for run_dir, last in results.items():
        print(run_dir, json.dumps(last, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
