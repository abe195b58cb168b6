"""The one editing loop: every method runs through it, sequential or batch-sequential.

    plan + cell (load model, requests, editor, pre-edit predictions) ─► resume ─► for each step:
        edit + telemetry (loop.step) ─► scoring at eval_at (loop.evaluate) ─► JSONL sinks, W&B
        ─► downstream schedule (loop.downstream) ─► checkpoint ─► summary (loop.summary)

The runner never knows which method it drives; an editor never scores. Its parts live in
editbench/loop/, where the API, posthoc and the benchmark import them from.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from editbench import checkpoint
from editbench.loop.downstream import Downstream
from editbench.loop.evaluate import Evaluation
from editbench.loop.plan import prepare
from editbench.loop.resume import finished_summary, resume_from_checkpoint
from editbench.loop.step import Stepper
from editbench.loop.summary import write_summary
from editbench.sinks import JsonlSink, WandbSink

WANDB_STEP_KEYS = ("edit_seconds", "phases", "telemetry_seconds", "matrices")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Run one (method, model, dataset) cell and return its summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (finished := finished_summary(cfg, run_dir)) is not None:
        return finished
    cell = prepare(cfg, run_dir)
    plan, meta, n = cell.plan, cell.meta, cell.plan.num_steps
    # After the pre-edit snapshot (it needs W0), before the sinks open the files it trims.
    done = resume_from_checkpoint(run_dir, cell.editor, cell.editor.ctx) if cfg.get("resume") else 0
    steps_sink, stepper = JsonlSink(run_dir / "steps.jsonl"), Stepper(cfg, cell.editor, cell.lm, n)
    evaluation = Evaluation(cell, stepper.guard, run_dir)
    downstream = Downstream(cfg.get("downstream"), cell.lm, cell.data_dir, int(cfg.seed), run_dir, meta)
    wandb = WandbSink(cfg.logger.wandb, run_dir, OmegaConf.to_container(cfg, resolve=True),
                      name=f"{cfg.method.name}-{cell.lm.name}-{cfg.dataset.name}-s{cfg.seed}")
    checkpoint_every = int(cfg.get("checkpoint_every") or 0)
    try:
        downstream.start(done, n, wandb)
        for step in tqdm(range(done + 1, n + 1), desc=f"{cfg.method.name} edits", unit="step", initial=done, total=n):
            batch = plan.batch(cell.requests, step)
            record = stepper.edit(step, batch)
            evaluation.after_step(step, batch, record)
            steps_sink.write({**meta, **record})
            wandb.log({k: v for k, v in record.items() if k in WANDB_STEP_KEYS}, step=step)
            if step != n:
                downstream.maybe(step, n, wandb)
            if checkpoint_every and (step % checkpoint_every == 0 or step == n):
                checkpoint.save(run_dir, step, cell.editor, cell.editor.ctx)  # after every record of the step
        if (finalized := stepper.finalize()) is not None:
            steps_sink.write({**meta, **finalized})
        downstream.maybe(n, n, wandb, final=True)  # after the last step (and PRUNE's finalize)
        evaluation.after_last_edit()
    finally:
        steps_sink.close()
        evaluation.close()
        downstream.close()
    return write_summary(cell, run_dir, evaluation, downstream, wandb)
