"""experiments/mose: the where-edits-go analysis on a tiny-model run (issue 20)."""

from __future__ import annotations

import csv
import math

import pytest

from editbench.io import read_jsonl


@pytest.fixture(scope="module")
def mose_run(tmp_path_factory, data_dir):
    from tests.test_runner import tiny_run

    run_dir = tmp_path_factory.mktemp("mose-run")
    tiny_run(run_dir, data_dir, "method=mose", "num_edits=3", "method.mom2_update_weight=0.1")
    return run_dir


def test_step_records_carry_edit_geometry_and_z_residual(mose_run):
    steps = [s for s in read_jsonl(mose_run / "steps.jsonl") if s.get("step") != "finalize"]
    assert len(steps) == 3
    for s in steps:
        geo = s["edit_geometry"]
        assert set(geo) == {str(x) for x in s["layers"]}
        assert all(g["case_ids"] == s["case_ids"] for g in geo.values())
        (group,) = s["v"]
        assert group["case_ids"] == s["case_ids"]
        assert len(group["z_residual"]) == len(s["layers"]) + 1


def test_where_edits_go_builds_the_table_and_the_figure(mose_run, tmp_path):
    from experiments.mose.where_edits_go import PREDICTORS, analyse

    out = tmp_path / "out"
    rows = analyse(mose_run, out, kept_at=0.0)  # at 0 every scored edit counts as kept
    assert [r["step"] for r in rows] == [1, 2, 3]
    finals = {str(e["case_id"]): e for e in read_jsonl(mose_run / "edits.jsonl") if e.get("final")}
    steps = {s["step"]: s for s in read_jsonl(mose_run / "steps.jsonl")}
    for r in rows:
        s = steps[r["step"]]
        assert r["chosen_layer"] == s["chosen_layer"][0] and r["case_id"] == s["case_ids"][0]
        assert r["reliability"] == finals[r["case_id"]]["reliability"] and r["kept"] == 1
        g = s["edit_geometry"][str(r["chosen_layer"])]
        assert r["output_norm"] == g["output_norm"][0]
        assert 0 <= r["along_share"] <= 1 + 1e-12
        assert r["along_share"] ** 2 + (r["change_across_output"] / r["change_norm"]) ** 2 == pytest.approx(1.0)
        z = s["v"][0]["z_residual"]
        assert r["z_left"] == pytest.approx(z[-1][0] / z[0][0])
    with (out / "edits.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3
    with (out / "edit_layers.csv").open() as f:
        assert len(list(csv.DictReader(f))) == sum(len(steps[k]["layers"]) for k in (1, 2, 3))
    text = (out / "report.md").read_text()
    assert "kept" in text and all(label in text for label in PREDICTORS.values())
    assert (out / "report.png").stat().st_size > 1000
    strict = analyse(mose_run, tmp_path / "strict", kept_at=1.01)  # nothing reaches it
    assert all(r["kept"] == 0 for r in strict) and not any(math.isnan(r["z_left"]) for r in strict)
