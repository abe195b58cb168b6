"""Reliability (issue 8): SIGKILL + resume, bad input at the command line, the guard in a run, determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from editbench import checkpoint
from editbench.config import compose
from editbench.io import read_jsonl
from editbench.runner import run
from tests.conftest import REPO

TINY = ["model=tiny-llama", "stats.n_tokens=2000", "logger.wandb.mode=disabled"]


def cli(*args: str, env_extra: dict | None = None, cwd_dir: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "editbench", *args], cwd=cwd_dir or REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def results(run_dir: Path) -> tuple[list[dict], dict]:
    return read_jsonl(run_dir / "edits.jsonl"), json.loads((run_dir / "summary.json").read_text())


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, run_data, isolated_cache):
    args = [*TINY, "method=mose", "num_edits=40", f"data_dir={run_data}"]
    env = {"EDITBENCH_CACHE": str(isolated_cache)}
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    code, log = finish(cli(*args, f"hydra.run.dir={whole}", env_extra=env))
    assert code == 0, log

    proc = cli(*args, f"hydra.run.dir={cut}", env_extra=env)
    deadline = time.time() + 240
    while len(read_jsonl(cut / "steps.jsonl")) < 3:  # a few steps done, more to come
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(read_jsonl(cut / "steps.jsonl"))
    assert 3 <= done_before < 40 and not (cut / "summary.json").exists()
    with open(cut / "steps.jsonl", "a") as f:  # as if the kill had torn a record in half
        f.write('{"step": 999, "case_id')

    code, log = finish(cli(*args, f"resume={cut}", env_extra=env))
    assert code == 0, log
    steps = [s["step"] for s in read_jsonl(cut / "steps.jsonl")]
    assert steps == list(range(1, 41))  # every step once: none lost, none doubled, the torn line gone
    assert results(cut) == results(whole)  # identical scores, record for record
    torch.testing.assert_close(checkpoint.load(cut).editor_state, checkpoint.load(whole).editor_state,
                               rtol=0, atol=0)


def test_resume_refuses_other_settings_and_a_used_run_dir_needs_resume(tmp_path, data_dir, isolated_cache):
    base = [*TINY, "method=mose", "num_edits=2", f"data_dir={data_dir}"]
    run(compose(base), tmp_path)
    from editbench.errors import ConfigError

    with pytest.raises(ConfigError, match="already holds a run's results; continue it with resume="):
        run(compose(base), tmp_path)
    (tmp_path / "summary.json").unlink()  # pretend it stopped before the end
    with pytest.raises(ConfigError, match=r"other settings \(method.mom2_update_weight\)"):
        run(compose([*base, "method.mom2_update_weight=3", f"resume={tmp_path}"]), tmp_path)


def test_same_config_and_seed_give_identical_edits_and_summary(tmp_path, data_dir, isolated_cache):
    args = [*TINY, "method=memit", "num_edits=3", "batch_size=1", f"data_dir={data_dir}"]
    run(compose(args), tmp_path / "a")
    run(compose(args), tmp_path / "b")
    assert (tmp_path / "a" / "edits.jsonl").read_bytes() == (tmp_path / "b" / "edits.jsonl").read_bytes()
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()


@pytest.mark.parametrize("method", [
    ["method=ft", "method.norm_constraint=inf", "method.early_stop=-1"],
    ["method=mose_oft"],  # issue 26: its weight writes go through the same guard
], ids=["ft", "mose_oft"])
def test_a_non_finite_update_fails_the_step_and_leaves_the_weights(tmp_path, data_dir, isolated_cache, method):
    # An infinite Adam step makes the trained weights (ft) or rotation parameters (mose_oft) inf or
    # NaN: the guard must refuse them.
    args = [*TINY, *method, "num_edits=2", "method.lr=inf", "method.steps=5", f"data_dir={data_dir}"]
    run(compose(args), tmp_path)
    steps = read_jsonl(tmp_path / "steps.jsonl")
    assert all(s["edit_failed"] and s["rejected_layers"] == s["layers"] for s in steps)
    assert all(m["delta_fro"] == 0.0 for s in steps for m in s["matrices"].values())


BAD_RECORDS = {
    "empty target": ({"target_new": ""}, "target_new"),
    "subject not in prompt": ({"subject": "Atlantis"}, "subject"),
    "wrong type": ({"prompt": 42}, "prompt"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_records_at_the_command_line_give_one_message(tmp_path, data_dir, case):
    records = json.loads((data_dir / "counterfact_easyedit_mend_format" / "counterfact-edit.json").read_text())[:3]
    change, field = BAD_RECORDS[case]
    records[1] = {**records[1], **change}
    folder = tmp_path / "data" / "counterfact_easyedit_mend_format"
    folder.mkdir(parents=True)
    (folder / "counterfact-edit.json").write_text(json.dumps(records))
    code, log = finish(cli(*TINY, "num_edits=3", f"data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}"))
    assert code == 2
    assert "editbench: error:" in log and "record 1" in log and field in log
    assert "Traceback" not in log


@pytest.mark.parametrize(("override", "expected"), [
    ("num_editz=3", "num_editz: Key 'num_editz' not in 'Config'"),  # the schemas are closed (schema/)
    ("method.lamda=3", "method.lamda: Key 'lamda' not in 'MoseConfig'"),
    ("method=nope", "Could not find 'method/nope'"),
    ("model=nope", "Could not find 'model/nope'"),
])
def test_unknown_config_keys_methods_and_models_at_the_command_line(tmp_path, override, expected):
    code, log = finish(cli(*TINY, override, f"hydra.run.dir={tmp_path}"))
    assert code == 2 and expected in log and log.startswith("editbench: error:")
    assert "Traceback" not in log
    if "Could not find" in expected:
        assert "Available options" in log  # Hydra lists what exists


def test_no_pickle_and_no_unsafe_torch_load_in_the_code():
    import re

    sources = [p for d in ("src", "baselines", "evaluation") for p in (REPO / d).rglob("*.py")]
    assert len(sources) > 20
    for path in sources:
        text = path.read_text()
        assert not re.search(r"^\s*(import|from) (pickle|dill|joblib)\b", text, re.M), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
        assert "trust_remote_code=True" not in text, path


def test_default_run_dir_then_resume_by_path(tmp_path, data_dir, isolated_cache):
    env = {"EDITBENCH_CACHE": str(isolated_cache), "EDITBENCH_DATA": str(data_dir)}
    code, log = finish(cli(*TINY, "num_edits=1", env_extra=env, cwd_dir=tmp_path))
    assert code == 0, log
    (run_dir,) = [p.parent for p in tmp_path.glob("outputs/*/*/summary.json")]  # Hydra's dated default
    code, log = finish(cli(*TINY, "num_edits=1", f"resume={run_dir}", env_extra=env, cwd_dir=tmp_path))
    assert code == 0 and "already finished" in log, log
    assert len(list(tmp_path.glob("outputs/*/*"))) == 1  # the resumed run used its own directory
