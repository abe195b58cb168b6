"""`python -m editbench.cells`: the cells of an experiment config, and the resumable runner, with real runs
of a tiny model (`+experiment=table1` with model=tiny-llama and a few edits)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from editbench.cells import GRACE_SECONDS, experiment_cells, main, run_cells, select
from editbench.config import compose
from editbench.errors import ConfigError
from editbench.io import read_jsonl
from editbench.results.runs import collect

METHODS = ["rome", "memit", "rect", "emmet", "prune", "alphaedit", "mose", "mose_oft"]


def test_list_table1_gives_its_24_cells_named_method_dataset(capsys):
    assert main(["table1", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = {name: overrides.split() for name, overrides in (line.split("\t") for line in lines)}
    assert len(lines) == len(cells) == 24
    assert set(cells) == {f"{m}-{d}" for m in METHODS for d in ("counterfact", "conceptedit", "zsre")}
    for name, overrides in cells.items():
        method, dataset = name.split("-")
        assert {f"method={method}", f"dataset={dataset}", "+experiment=table1"} <= set(overrides), name
    # what cells.sh added beyond the grid is in the config now: ConceptEdit-Inter, Table 2's batch λ, Fig. 3's tasks
    assert compose(cells["rome-conceptedit"]).dataset.setting == "inter"
    (emmet,) = select(experiment_cells("table2"), ["^emmet-counterfact$"])
    assert compose(list(emmet.overrides)).method.mom2_update_weight == 1e5  # conf/method_model_batch/
    (mose,) = select(experiment_cells("fig3"), ["^mose$"])
    assert list(compose(list(mose.overrides)).downstream.tasks) == ["rte_ll", "sst2_ll"]


def test_names_carry_the_model_where_the_scale_sweeps_two():
    names = [c.name for c in experiment_cells("table1", ["scale=paper"])]
    assert len(names) == 48 and "mose-zsre-llama3-8b" in names and "mose-zsre-qwen2.5-7b" in names
    # a swept key fixed on the command line keeps its place in the name: existing run dirs still match
    assert [c.name for c in experiment_cells("table1", ["method=mose"])] == ["mose-counterfact", "mose-conceptedit",
                                                                             "mose-zsre"]


def test_bad_input_is_one_clear_error(capsys):
    assert main(["table9", "--list"]) == 2
    assert "no experiment config 'table9'" in capsys.readouterr().err
    assert main(["table1", "--only", "(mose", "--list"]) == 2
    assert "--only '(mose' is not a regular expression" in capsys.readouterr().err
    # a pattern that starts with "-" is the pattern, not an option (make table1 ONLY='-conceptedit$')
    assert main(["table1", "--only", "-conceptedit$", "--only", "-zsre$", "--skip", "-zsre$", "--list"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert len(names) == 8 and all(n.endswith("-conceptedit") for n in names)
    assert main(["fig4", "--skip", ".", "--list"]) == 2
    assert "no cell matches" in capsys.readouterr().err
    assert main(["experiments/nowhere/cells.sh", "--list"]) == 2
    assert "no cells file experiments/nowhere/cells.sh" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no experiment config"):
        experiment_cells("nope")


# Enough steps that a cell frozen (SIGSTOP) after its first one cannot have finished in between: a tiny
# step takes ~0.1 s, so the last 29 take 3-4 s against the test's 10 ms poll (with 6 edits the window was
# about a second; the test failed twice, both times in a CI run on a machine busy with a long cell, most
# likely that race: the failure message was not kept).
EDITS = 30
TINY = ["model=tiny-llama", f"num_edits={EDITS}", "stats.n_tokens=2000", "logger.wandb.mode=disabled"]
TWO = ["--only", "^(mose|mose_oft)-counterfact$"]  # two cells of about the same speed


def _scores(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    return {k: summary[k] for k in ("n", "reliability", "generalization", "locality", "pre")}


def _cell_pid(runner_pid: int, run_dir) -> int:
    """The runner's child process that runs into `run_dir` (Linux: /proc)."""
    for task in Path(f"/proc/{runner_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if f"hydra.run.dir={run_dir}" in Path(f"/proc/{pid}/cmdline").read_text().split("\0"):
                return int(pid)
    raise AssertionError(f"no process of the runner {runner_pid} runs into {run_dir}")


def test_two_cells_run_then_skip_and_stopped_ones_resume_to_the_same_summary(tmp_path, run_data, capsys):
    argv = ["table1", *TINY, f"data_dir={run_data}", *TWO]
    cells = select(experiment_cells("table1", [*TINY, f"data_dir={run_data}"]), [TWO[1]])
    ref = tmp_path / "ref"
    # 1. Both cells, two at a time, to their end.
    assert main([*argv, "--runs", str(ref)]) == 0
    assert capsys.readouterr().out.count(": finished") == 2
    for c in cells:
        assert (ref / c.name / "summary.json").is_file() and (ref / f"{c.name}.log").is_file()
    # 2. A rerun skips them.
    before = {c.name: (ref / c.name / "summary.json").stat().st_mtime_ns for c in cells}
    assert run_cells(cells, ref, jobs=2) is True
    assert capsys.readouterr().out.splitlines() == [f"{c.name}: done" for c in cells]
    assert before == {c.name: (ref / c.name / "summary.json").stat().st_mtime_ns for c in cells}
    # 2b. Their records (all but the checkpoints: what `make keep` commits) are a done cell on a new machine,
    # and the report reads the same table from them.
    for c in cells:  # as a run with logger.wandb.mode=offline leaves it (these run with W&B disabled)
        (ref / c.name / "wandb" / "offline-run-1").mkdir(parents=True)
        (ref / c.name / "wandb" / "offline-run-1" / "run-1.wandb").write_bytes(b"\0")
    assert main([*argv, "--runs", str(ref), "--records"]) == 0
    kept_files = [Path(line) for line in capsys.readouterr().out.splitlines()]
    names = {f.relative_to(ref).as_posix() for f in kept_files}
    for c in cells:
        assert {f"{c.name}/{f}" for f in ("summary.json", "edits.jsonl", "steps.jsonl", "run_config.yaml",
                                          ".hydra/overrides.yaml")} <= names
        assert (ref / c.name / "checkpoint.safetensors").is_file()
    assert not any(f.name == "checkpoint.safetensors" or "wandb" in f.parts for f in kept_files)
    kept = tmp_path / "kept"
    for f in kept_files:
        (kept / f.relative_to(ref)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, kept / f.relative_to(ref))
    assert run_cells(cells, kept, jobs=2) is True
    assert capsys.readouterr().out.splitlines() == [f"{c.name}: done" for c in cells]
    pd.testing.assert_frame_equal(collect(kept).drop(columns="run_dir"), collect(ref).drop(columns="run_dir"))
    assert main([*argv, "--runs", str(tmp_path / "none"), "--records"]) == 0 and capsys.readouterr().out == ""
    # 3. A deadline stops the running cells (SIGINT) and the runner says not all finished.
    started = time.monotonic()
    assert run_cells(cells[:1], tmp_path / "short", jobs=1, deadline=1.0) is False
    assert "deadline, stopping" in capsys.readouterr().out and time.monotonic() - started < 1.0 + GRACE_SECONDS
    assert not (tmp_path / "short" / cells[0].name / "summary.json").exists()
    # 4. The same stop (SIGTERM to the runner: SIGINT to its cells) once both cells have written steps: exit 1,
    # the steps stay; the rerun continues them after their last checkpoint (resume=) to the first run's scores.
    # Each cell is frozen (SIGSTOP) as soon as it has a step, so neither can finish while the other starts up
    # (with EDITS above, its remaining steps take seconds); the runner's SIGINT waits for SIGCONT.
    cut = tmp_path / "cut"
    runner = subprocess.Popen([sys.executable, "-m", "editbench.cells", *argv, "--runs", str(cut)],
                              stdout=subprocess.PIPE, text=True)
    frozen: dict[str, int] = {}
    while len(frozen) < len(cells) and runner.poll() is None:
        for c in cells:
            if c.name not in frozen and read_jsonl(cut / c.name / "steps.jsonl"):
                frozen[c.name] = _cell_pid(runner.pid, cut / c.name)
                os.kill(frozen[c.name], signal.SIGSTOP)
        time.sleep(0.01)
    assert len(frozen) == len(cells), runner.stdout.read()
    runner.send_signal(signal.SIGTERM)
    said = [runner.stdout.readline() for _ in cells]  # the runner has sent SIGINT to both
    assert all("SIGTERM, stopping" in line for line in said), said
    for pid in frozen.values():
        os.kill(pid, signal.SIGCONT)
    assert runner.wait(timeout=GRACE_SECONDS + 30) == 1, runner.stdout.read()
    for c in cells:
        assert not (cut / c.name / "summary.json").exists()
        assert read_jsonl(cut / c.name / "steps.jsonl")
    assert run_cells(cells, cut, jobs=2) is True
    for c in cells:
        assert "resuming" in (cut / f"{c.name}.log").read_text()
        assert _scores(cut / c.name) == _scores(ref / c.name)
        assert [r["step"] for r in read_jsonl(cut / c.name / "steps.jsonl")] == list(range(1, EDITS + 1))


def test_issue20_lambda_choice_reads_the_grid_from_the_cells_file(tmp_path, capsys):
    from experiments.gemma3 import choose_lambda

    cells = tmp_path / "cells.sh"
    cells.write_text("for l in 10 100; do cell i20-lam-mose-$l method=mose method.mom2_update_weight=$l; done\n"
                     "for l in 0.1 1; do cell i20-lam-alphaedit-$l method=alphaedit method.L2=$l; done\n"
                     "cell i20-e100-mose method=mose\n"
                     "for l in 10 100; do cell i20-h100-mose-$l method=mose method.mom2_update_weight=$l; done\n")
    runs = tmp_path / "runs"
    scores = {"mose-10": (0.5, 0.25, 0.75), "mose-100": (0.75, 0.25, 0.5), "alphaedit-0.1": (1.0, 0.4, 0.9)}
    for name, (r, g, loc) in scores.items():
        (runs / f"i20-lam-{name}").mkdir(parents=True)
        (runs / f"i20-lam-{name}" / "summary.json").write_text(
            json.dumps({"reliability": r, "generalization": g, "locality": loc}))
    # MOSE: equal means (exactly 0.5), the first value in the file's order wins; AlphaEdit's grid is unfinished: left out
    assert choose_lambda.choices(cells, runs) == {"MOSE_LAM": "10"}
    (runs / "i20-lam-alphaedit-1").mkdir()
    (runs / "i20-lam-alphaedit-1" / "summary.json").write_text(
        json.dumps({"reliability": 1.0, "generalization": 0.5, "locality": 0.9}))
    assert choose_lambda.main([str(cells), str(runs)]) == 0
    assert capsys.readouterr().out.split() == ["MOSE_LAM=10", "ALPHAEDIT_L2=1"]
    assert choose_lambda.main([str(runs), str(runs)]) == 2
    # the check at the evaluated horizon: the same rule over the i20-h100- grid, which can disagree with step 1's
    assert choose_lambda.choices(cells, runs, "i20-h100-") == {}
    for lam, loc in (("10", 0.25), ("100", 0.75)):
        (runs / f"i20-h100-mose-{lam}").mkdir()
        (runs / f"i20-h100-mose-{lam}" / "summary.json").write_text(
            json.dumps({"reliability": 0.5, "generalization": 0.25, "locality": loc}))
    assert choose_lambda.main([str(cells), str(runs), "i20-h100-"]) == 0
    assert capsys.readouterr().out.split() == ["MOSE_LAM=100"]


def test_table2_batch_lambda_is_chosen_by_the_same_rule_and_written_where_table2_reads_it(tmp_path, capsys):
    import shutil

    from omegaconf import OmegaConf

    from editbench.config import compose
    from experiments.table2 import choose_lambda

    conf = tmp_path / "conf"
    shutil.copytree(choose_lambda.CONF, conf)
    cells = Path(__file__).resolve().parents[1] / "experiments" / "table2" / "lambda-cells.sh"
    runs = tmp_path / "runs"
    means = {"emmet-10000": 0.5, "emmet-100000": 0.25, "emmet-1000000": 0.75, "alphaedit-1": 0.5}
    for name, score in means.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "summary.json").write_text(
            json.dumps({"reliability": score, "generalization": score, "locality": score}))
    assert choose_lambda.main([str(cells), str(runs)], conf) == 0
    assert capsys.readouterr().out.splitlines() == ["emmet: mom2_update_weight = 1e+06"]  # AlphaEdit's grid unfinished
    emmet = (conf / "emmet_smollm2-135m.yaml").read_text()
    assert OmegaConf.create(emmet).mom2_update_weight == 1e6 and "NOT YET RUN" not in emmet and "# @package" in emmet
    assert (conf / "alphaedit_smollm2-135m.yaml").read_text() == (choose_lambda.CONF / "alphaedit_smollm2-135m.yaml"
                                                                 ).read_text()
    # the shipped file is what Table 2's cells compose (the rule writes the value they read)
    assert compose(["+experiment=table2", "method=emmet"]).method.mom2_update_weight == OmegaConf.create(
        (choose_lambda.CONF / "emmet_smollm2-135m.yaml").read_text()).mom2_update_weight
    assert choose_lambda.main([str(runs), str(runs)], conf) == 2
