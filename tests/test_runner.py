"""The loop end to end on a tiny model, through Hydra's composed config."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from editbench.config import compose
from editbench.runner import eval_steps, run
from editbench.sinks import read_jsonl


def compose_cfg(*overrides: str):
    return compose(overrides)


def tiny_run(tmp_path, shared_data, *overrides: str) -> dict:
    cfg = compose_cfg("model=tiny-llama", "stats.n_tokens=2000", "logger.wandb.mode=disabled",
                      f"data_dir={shared_data}", *overrides)
    return run(cfg, tmp_path)


def test_mose_run_writes_steps_edits_summary_and_keeps_norms(tmp_path, shared_data, isolated_cache):
    summary = tiny_run(tmp_path, shared_data, "method=mose", "num_edits=4")
    steps = read_jsonl(tmp_path / "steps.jsonl")
    edits = read_jsonl(tmp_path / "edits.jsonl")
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert len(edits) == 4 and {e["protocol"] for e in edits} == {"final"}
    assert all(e["scorer"] == "token_tf/agreement" and e["dataset"] == "CounterFact" for e in edits)
    assert summary["n"] == 4 and 0 <= summary["reliability"] <= 1
    last = steps[-1]["matrices"]
    for layer in steps[-1]["layers"]:
        assert last[str(layer)]["sv_drift"] < 1e-6  # rotations keep the spectrum
        assert last[str(layer)]["delta_fro"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["n"] == 4
    templates = json.loads((tmp_path / "context_templates.json").read_text())
    assert templates[0] == ["{}"] and len(templates[1]) == 5


def test_ft_immediate_and_batches(tmp_path, shared_data, isolated_cache):
    summary = tiny_run(tmp_path, shared_data, "method=ft", "num_edits=4", "batch_size=2", "eval_at=immediate")
    steps = read_jsonl(tmp_path / "steps.jsonl")
    edits = read_jsonl(tmp_path / "edits.jsonl")
    assert [len(s["case_ids"]) for s in steps] == [2, 2]
    assert [e["edit_step"] for e in edits] == [1, 1, 2, 2]
    assert [e["eval_step"] for e in edits] == [1, 1, 2, 2]
    assert summary["protocol"] == "immediate" and summary["batch_size"] == 2
    assert steps[-1]["matrices"]["1"]["delta_fro"] > 0  # additive: W moved


def test_checkpoint_protocol_scores_all_edits_so_far(tmp_path, shared_data, isolated_cache):
    tiny_run(tmp_path, shared_data, "method=ft", "num_edits=3", "eval_at=[1,2]")
    edits = read_jsonl(tmp_path / "edits.jsonl")
    assert [e["eval_step"] for e in edits] == [1, 2, 2, 3, 3, 3]


def test_eval_steps_rejects_out_of_range():
    from editbench.errors import ConfigError

    assert eval_steps("final", 5) == ("final", {5})
    with pytest.raises(ConfigError, match="outside 1..5"):
        eval_steps([7], 5)
    with pytest.raises(ConfigError, match="final, immediate"):
        eval_steps("sometimes", 5)


def test_cli_unknown_data_dir_gives_one_clear_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "editbench", "model=tiny-llama", "data_dir=/nonexistent/place",
         "logger.wandb.mode=disabled", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "/nonexistent/place" in out.stderr and "Traceback" not in out.stderr


def test_wandb_offline_run_is_written_into_the_run_dir(tmp_path, shared_data, isolated_cache):
    tiny_run(tmp_path, shared_data, "method=ft", "num_edits=2", "logger.wandb.mode=offline")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))


def test_report_tables_and_norm_plot_from_real_runs(tmp_path, shared_data, isolated_cache):
    from editbench.report import collect, main

    for method in ("mose", "ft"):
        tiny_run(tmp_path / method, shared_data, f"method={method}", "num_edits=2")
    df = collect(tmp_path)
    assert sorted(df.method) == ["ft", "mose"]
    main([str(tmp_path), "--by", "method", "--plot-norms", str(tmp_path / "mose"), str(tmp_path / "ft")])
    md = (tmp_path / "report.md").read_text()
    assert "| mose" in md and "| ft" in md and "reliability" in md
    assert (tmp_path / "report.csv").is_file()
    assert (tmp_path / "norms.png").stat().st_size > 1000


def test_downstream_before_every_k_and_after_with_retention(tmp_path, shared_data, isolated_cache):
    summary = tiny_run(tmp_path, shared_data, "method=ft", "num_edits=3", "downstream=glue",
                       "downstream.n_examples=4", "downstream.every_k_steps=2")
    records = read_jsonl(tmp_path / "downstream.jsonl")
    assert sorted({r["step"] for r in records}) == [0, 2, 3]
    assert {r["task"] for r in records} == {"rte_ll", "sst2_ll"}
    assert all(r["retention"] == 1.0 for r in records if r["step"] == 0)
    assert summary["downstream"]["step"] == 3 and "rte_ll_retention" in summary["downstream"]


def test_bench_splits_an_edit_into_phases_in_a_fresh_process(tmp_path, shared_data, isolated_cache, monkeypatch):
    from editbench.bench import main

    monkeypatch.setenv("EDITBENCH_DATA", str(shared_data))
    monkeypatch.setenv("EDITBENCH_CACHE", str(isolated_cache))
    report = main(["--model", "tiny-llama", "--methods", "mose", "--edits", "2", "--sections", "methods",
                   "--set", "stats.n_tokens=2000", "--threads", "1", "--out", str(tmp_path)])
    (mose,) = report["methods"]
    per_edit = mose["per_edit_seconds"]
    assert mose["edits"] == 2 and per_edit["values"] > 0 and per_edit["keys"] > 0 and per_edit["scoring"] > 0
    steps = read_jsonl(tmp_path / "runs" / "mose-b1" / "steps.jsonl")
    for s in steps:  # the phases add up to the edit's wall time
        assert abs(sum(s["phases"].values()) - s["edit_seconds"]) < 1e-6
    assert json.loads((tmp_path / "bench.json").read_text())["machine"]["torch"] == torch.__version__
    assert "Seconds per edit, by phase" in (tmp_path / "bench.md").read_text()
