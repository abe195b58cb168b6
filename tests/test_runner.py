"""The loop end to end on a tiny model, through Hydra's composed config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from editbench.cells import file_cells
from editbench.config import compose
from editbench.io import read_jsonl
from editbench.loop.plan import eval_steps
from editbench.runner import run
from tests.conftest import REPO


def compose_cfg(*overrides: str):
    return compose(overrides)


def tiny_run(tmp_path, data_dir, *overrides: str) -> dict:
    cfg = compose_cfg("model=tiny-llama", "stats.n_tokens=2000", "logger.wandb.mode=disabled",
                      f"data_dir={data_dir}", *overrides)
    return run(cfg, tmp_path)


def test_mose_run_writes_steps_edits_summary_and_keeps_norms(tmp_path, data_dir, isolated_cache):
    summary = tiny_run(tmp_path, data_dir, "method=mose", "num_edits=4")
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


def test_ft_immediate_and_batches(tmp_path, data_dir, isolated_cache):
    summary = tiny_run(tmp_path, data_dir, "method=ft", "num_edits=4", "batch_size=2", "eval_at=immediate")
    steps = read_jsonl(tmp_path / "steps.jsonl")
    edits = read_jsonl(tmp_path / "edits.jsonl")
    assert [len(s["case_ids"]) for s in steps] == [2, 2]
    immediate = [e for e in edits if not e.get("final")]
    assert [e["edit_step"] for e in immediate] == [1, 1, 2, 2]
    assert [e["eval_step"] for e in immediate] == [1, 1, 2, 2]
    # the same requests scored again on the final model: what was kept, beside what was learnt
    after = [e for e in edits if e.get("final")]
    assert [e["eval_step"] for e in after] == [2, 2, 2, 2] and [e["edit_step"] for e in after] == [1, 1, 2, 2]
    assert summary["protocol"] == "immediate" and summary["batch_size"] == 2 and summary["n"] == 4
    assert summary["after_last_edit"]["n"] == 4
    assert summary["after_last_edit"]["reliability"] == pytest.approx(
        sum(e["reliability"] for e in after) / 4)
    assert steps[-1]["matrices"]["1"]["delta_fro"] > 0  # additive: W moved


def test_checkpoint_protocol_scores_all_edits_so_far(tmp_path, data_dir, isolated_cache):
    tiny_run(tmp_path, data_dir, "method=ft", "num_edits=3", "eval_at=[1,2]")
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


def test_wandb_offline_run_is_written_into_the_run_dir(tmp_path, data_dir, isolated_cache):
    tiny_run(tmp_path, data_dir, "method=ft", "num_edits=2", "logger.wandb.mode=offline")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))


def test_report_tables_and_norm_plot_from_real_runs(tmp_path, data_dir, isolated_cache):
    from editbench.report import main
    from editbench.results.runs import collect

    cells = [("mose", "counterfact", 0), ("mose", "counterfact", 1), ("ft", "counterfact", 0),
             ("mose", "zsre", 0), ("ft", "zsre", 0)]
    for method, dataset, seed in cells:
        tiny_run(tmp_path / "runs" / f"{method}-{dataset}-{seed}", data_dir, f"method={method}",
                 f"dataset={dataset}", f"seed={seed}", "num_edits=2")
    df = collect(tmp_path / "runs")
    assert sorted(df.method) == ["ft", "ft", "mose", "mose", "mose"]
    assert set(df["config:method.mom2_update_weight"].dropna()) == {10.0}

    main([str(tmp_path / "runs"), "--by", "method", "dataset", "--out", str(tmp_path / "flat"),
          "--plot-norms", str(tmp_path / "runs" / "mose-counterfact-0"), str(tmp_path / "runs" / "ft-counterfact-0")])
    flat = pd.read_csv(tmp_path / "flat" / "report.csv")
    mose_cf = flat[(flat.method == "mose") & (flat.dataset == "CounterFact")].iloc[0]
    assert mose_cf["seeds"] == 2 and "reliability std" in flat
    runs = df[(df.method == "mose") & (df.dataset == "CounterFact")]
    assert mose_cf["reliability"] == round(runs.reliability.mean() * 100, 2)
    # the standard error over the scored requests, sd / √n, from each run's final records in edits.jsonl
    one = df[(df.method == "ft") & (df.dataset == "CounterFact")].iloc[0]
    final = pd.DataFrame([e for e in read_jsonl(Path(one.run_dir) / "edits.jsonl") if e.get("final")])
    assert one["se:reliability"] == pytest.approx(final.reliability.std(ddof=1) / len(final) ** 0.5)
    assert "n:reliability" not in flat and one["count:reliability"] == len(final) == one["n"]
    assert (tmp_path / "flat" / "norms.png").stat().st_size > 1000
    norms = pd.read_csv(tmp_path / "flat" / "norms.csv").set_index("method")
    assert norms.loc["mose", "fro/fro0 max"] == pytest.approx(1.0, abs=1e-6)  # rotations keep the norm
    assert abs(norms.loc["ft", "fro/fro0 max"] - 1.0) > 1e-4 and norms.loc["ft", "max sv drift"] > 1e-4
    assert (norms.steps == 2).all() and (norms["s per edit"] > 0).all()

    main([str(tmp_path / "runs"), "--layout", "paper", "--out", str(tmp_path / "paper")])
    md = (tmp_path / "paper" / "report.md").read_text()
    assert md.index("MOSE (paper)") > 0 and "ZsRE (easyedit convention) Rel." in md and "CounterFact Loc." in md
    tex = (tmp_path / "paper" / "report.tex").read_text()
    assert "\\begin{tabular}" in tex and "ZsRE" in tex
    # A sweep with cells still to run: the paper layout marks them instead of printing nan.
    main([str(tmp_path / "runs" / "mose-counterfact-0"), str(tmp_path / "runs" / "ft-zsre-0"), "--layout", "paper",
          "--out", str(tmp_path / "partial")])
    md = (tmp_path / "partial" / "report.md").read_text()
    assert "–" in md and "nan" not in md
    tex = (tmp_path / "partial" / "report.tex").read_text()
    assert "--" in tex and "nan" not in tex


def test_a_score_on_fewer_requests_than_n_states_its_own_n():
    from editbench.results.runs import table

    # CounterFact's ES / PS / NS exist only on the records that carry the ROME fields (2 of 100 here)
    df = pd.DataFrame([{"method": "memit", "n": 100, "reliability": 0.8, "es": 0.5, "count:reliability": 100,
                        "count:es": 2},
                       {"method": "mose", "n": 100, "reliability": 0.2, "count:reliability": 100}])
    out = table(df, ["method"]).set_index("method")
    assert list(out.columns[:3]) == ["n", "seeds", "n:es"] and "n:reliability" not in out
    assert out.loc["memit", "n:es"] == 2 and pd.isna(out.loc["mose", "n:es"])
    assert "n:es" not in table(df.assign(**{"count:es": 100}).iloc[:1], ["method"])


def test_downstream_before_every_k_and_after_with_retention(tmp_path, data_dir, isolated_cache):
    summary = tiny_run(tmp_path, data_dir, "method=ft", "num_edits=3", "downstream=glue",
                       "downstream.n_examples=4", "downstream.every_k_steps=2")
    records = read_jsonl(tmp_path / "downstream.jsonl")
    assert sorted({r["step"] for r in records}) == [0, 2, 3]
    assert {r["task"] for r in records} == {"rte_ll", "sst2_ll"}
    assert all(r["retention"] == 1.0 for r in records if r["step"] == 0)
    assert summary["downstream"]["step"] == 3 and "rte_ll_retention" in summary["downstream"]

    # Fig. 3 from the same run: one row per evaluation step, scores as the run recorded them.
    from editbench.report import main

    main([str(tmp_path), "--by", "method", "--out", str(tmp_path / "fig3"), "--plot-downstream", str(tmp_path)])
    curves = pd.read_csv(tmp_path / "fig3" / "downstream.csv")
    assert list(curves.step) == [0, 2, 3] and set(curves.label) == {"FT (constrained)"}
    assert (curves.loc[curves.step == 0, ["rte_ll retention", "sst2_ll retention"]] == 100).all(axis=None)
    recorded = {(r["step"], r["task"]): r["score"] for r in records}
    assert all(curves.set_index("step").loc[step, f"{task} score"] == score for (step, task), score in recorded.items())
    assert (tmp_path / "fig3" / "downstream.png").stat().st_size > 1000


def test_bench_splits_an_edit_into_phases_in_a_fresh_process(tmp_path, data_dir, isolated_cache, monkeypatch):
    from editbench.bench import main

    monkeypatch.setenv("EDITBENCH_DATA", str(data_dir))
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


@pytest.mark.parametrize("experiment", ["table1", "table2", "fig2", "fig3", "fig4"])
@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_experiment_configs_compose_at_both_scales(experiment, scale):
    cfg = compose([f"+experiment={experiment}", f"scale={scale}"])
    assert cfg.scale.name == scale
    assert cfg.model.name == ("smollm2-135m" if scale == "cpu" else "llama3-8b")
    edits = cfg.num_steps * cfg.batch_size if cfg.num_edits is None else cfg.num_edits
    assert edits == {"table1": cfg.scale.single_edits, "table2": cfg.scale.batch_steps * 10,
                     "fig2": cfg.scale.single_edits, "fig3": cfg.scale.downstream_edits,
                     "fig4": cfg.scale.ablation_edits}[experiment]
    assert edits >= {"table1": 200, "table2": 70}.get(experiment, 100) if scale == "cpu" else edits >= 4000


@pytest.mark.parametrize("cells_file", sorted((REPO / "experiments").glob("*/*cells.sh")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_cell_composes_to_the_experiment_it_names(cells_file):
    """The studies' cells files (run by `python -m editbench.cells <file>`; the artefacts' cells come from
    their experiment configs): each cell's overrides must compose, with unique names and the method its
    name says."""
    cells = file_cells(cells_file)  # it refuses a name given twice
    assert cells
    for cell in cells:
        cfg = compose(list(cell.overrides))
        method = dict(o.split("=", 1) for o in cell.overrides if o.startswith("method=")).get("method")
        assert method is None or cfg.method.name == method, cell.name


def test_multirun_on_the_local_launcher_groups_wandb_runs_by_sweep(tmp_path, data_dir):
    sweep = tmp_path / "sweep-42"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDITBENCH_DATA": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "editbench", "--multirun", "method=mose,ft", "model=tiny-llama",
                           "num_edits=1", "stats.n_tokens=2000", "threads=1", "hydra/launcher=local",
                           "logger.wandb.mode=offline", f"hydra.sweep.dir={sweep}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Joblib" in proc.stdout + proc.stderr  # the parallel launcher ran the cells
    runs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert [r.name.split("-")[1] for r in runs] == ["mose", "ft"]
    for run_dir in runs:
        log = next(run_dir.glob("wandb/offline-run-*/logs/debug.log")).read_text()
        assert "'group': 'sweep-42'" in log


def test_posthoc_downstream_equals_the_runs_own_final_evaluation(tmp_path, data_dir, isolated_cache):
    """A run's final weights, restored from its checkpoint and finalized (PRUNE restrains there),
    score on the downstream tasks exactly what the run scored after its last step."""
    from editbench.posthoc import main as posthoc
    from editbench.results.runs import collect

    run_dir = tmp_path / "prune"
    summary = run(compose_cfg("model=tiny-llama", "stats.n_tokens=2000", "logger.wandb.mode=disabled",
                              f"data_dir={data_dir}", "method=prune", "num_edits=3", "downstream=glue",
                              "downstream.n_examples=6"), run_dir)
    assert posthoc([str(run_dir), "downstream=glue", "downstream.n_examples=6"]) == 0
    records = read_jsonl(run_dir / "downstream_posthoc.jsonl")
    in_run = {(r["step"], r["task"]): r["score"] for r in read_jsonl(run_dir / "downstream.jsonl")}
    assert {(r["step"], r["task"]): r["score"] for r in records} == in_run
    assert all(r["cached"] for r in records if r["step"] == 0)  # the run stored its pre-edit scores
    last = json.loads((run_dir / "downstream_posthoc.json").read_text())
    assert last == summary["downstream"]
    assert collect(tmp_path).loc[0, "ds:rte_ll_retention"] == last["rte_ll_retention"]
    assert posthoc([str(tmp_path / "missing"), "downstream=glue"]) == 2
