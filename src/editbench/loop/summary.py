"""The end of a run: summary.json (the results: the same config and seed give the same file),
timing.json (the measured times and memory, kept apart), W&B's summary and the console table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from editbench.build import SUMMARY_METRICS, summarize
from editbench.demo import is_demo_dir
from editbench.guard import count_warnings
from editbench.io import read_jsonl, write_json
from editbench.loop.downstream import Downstream
from editbench.loop.evaluate import Evaluation
from editbench.loop.plan import Cell
from editbench.sinks import WandbSink
from editbench.timing import peak_device_mib, peak_rss_mib


def write_summary(cell: Cell, run_dir: Path, evaluation: Evaluation, downstream: Downstream,
                  wandb: WandbSink) -> dict:
    """Write summary.json and timing.json, finish W&B, print the table; the summary."""
    # counted from the whole steps.jsonl, so a resumed run counts the steps before the resume too
    warnings = count_warnings([r for r in read_jsonl(run_dir / "steps.jsonl") if r.get("step") != "finalize"]
                              + [{"warnings": evaluation.final_warnings}])
    summary = {**cell.meta, **evaluation.scores(), "warnings": warnings,
               "downstream": downstream.last,
               "pre": summarize(list(cell.scorer.pre_scores.values())),
               "model_source": cell.lm.source, "data_dir": str(cell.data_dir), "demo_data": is_demo_dir(cell.data_dir),
               "config_warnings": cell.config_warnings}
    if cell.plan.protocol == "immediate":
        summary["after_last_edit"] = {"n": len(evaluation.after_last), **summarize(evaluation.after_last)}
    # Timings live apart from the results, so the same config and seed give an identical summary.json.
    write_json(run_dir / "timing.json", {"load_seconds": cell.lm.load_seconds, "pre_scoring_seconds": cell.pre_seconds,
                                         "scoring_seconds": cell.scorer.seconds, "peak_rss_mib": peak_rss_mib(),
                                         "peak_device_mib": peak_device_mib()})
    write_json(run_dir / "summary.json", summary)
    wandb.table("edits", evaluation.records)
    wandb.summary(summary)
    wandb.finish()
    print_summary(summary)
    return summary


def print_summary(summary: dict) -> None:
    rows = {"pre-edit": summary.get("pre", {}),
            f"{summary['method']} ({summary['protocol']})": {m: summary.get(m) for m in SUMMARY_METRICS}}
    if "after_last_edit" in summary:
        rows["after the last edit"] = {m: summary["after_last_edit"].get(m) for m in SUMMARY_METRICS}
    df = pd.DataFrame(rows).T.dropna(axis=1, how="all")
    print(f"\n{summary['model']} · {summary['dataset']} · n={summary['n']} · scorer {summary['scorer']}")
    print((df * 100).round(2).to_string())
