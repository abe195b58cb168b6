"""The Python API: the README example as written, and the same edits as the command-line runner."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

import editbench
from editbench.api import Session, to_overrides
from editbench.config import compose
from editbench.demo import is_demo_dir
from editbench.errors import ConfigError, DataError
from editbench.runner import run

REPO = Path(__file__).resolve().parents[1]

TINY = ["model=tiny-llama", "stats.n_tokens=2000", "logger.wandb.mode=disabled"]


def readme_api_code() -> str:
    """The Python blocks of the README's "Python API" section, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Python API\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert section, "README has no '## Python API' section"
    blocks = re.findall(r"^```python\n(.*?)^```", section.group(1), flags=re.S | re.M)
    assert blocks, "the Python API section has no python code block"
    return "\n".join(blocks)


def test_readme_example_runs_as_written_on_the_demo_set(monkeypatch, isolated_cache):
    monkeypatch.delenv("EDITBENCH_DATA", raising=False)  # no data dir: the example must work anywhere
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_api_code(), "README.md:python-api", "exec"), namespace)
    session = namespace["session"]
    assert isinstance(session, editbench.Session) and is_demo_dir(session.data_dir)
    assert len(namespace["steps"]) == 4 and all("layers" in step for step in namespace["steps"])
    telemetry = session.telemetry()
    assert telemetry and all(m["delta_fro"] > 0 for m in telemetry.values())
    assert "reliability" in out.getvalue()


def test_api_edits_exactly_like_the_cli_runner(tmp_path, data_dir, isolated_cache):
    overrides = [*TINY, "method=mose", "num_edits=2", f"data_dir={data_dir}"]
    summary = run(compose(overrides), tmp_path / "cli")
    cli_steps = [json.loads(line) for line in (tmp_path / "cli" / "steps.jsonl").read_text().splitlines()]
    cli_edits = [json.loads(line) for line in (tmp_path / "cli" / "edits.jsonl").read_text().splitlines()]

    session = Session(overrides)
    requests = session.requests()
    session.track(requests)  # the pre-edit snapshot, as the runner takes it before its first step
    for cli_step, request in zip(cli_steps, requests, strict=True):
        [diag] = session.edit([request])
        assert cli_step["case_ids"] == [request.case_id]
        assert diag["layers"] == cli_step["layers"] and diag["chosen_layer"] == cli_step["chosen_layer"]
        api_matrices = session.telemetry()
        assert api_matrices.keys() == cli_step["matrices"].keys()
        for layer, stats in api_matrices.items():
            assert stats == pytest.approx(cli_step["matrices"][layer], rel=1e-12, abs=1e-15)
    for cli, api in zip(cli_edits, session.score(requests), strict=True):
        assert cli["case_id"] == api["case_id"]
        assert {k: cli[k] for k in api} == pytest.approx(api)
    assert session.summary(requests)["reliability"] == pytest.approx(summary["reliability"])


def test_requests_first_seen_after_an_edit_are_refused(isolated_cache, data_dir):
    session = editbench.load(model="tiny-llama", stats={"n_tokens": 2000}, data_dir=str(data_dir),
                             method={"layer_selection": "fixed"})
    first, second = session.requests(num_edits=2)
    session.edit([first])
    with pytest.raises(ConfigError, match="first seen after an edit"):
        session.score([second])
    assert session.score([first])[0]["case_id"] == first.case_id  # seen before the edit: fine


def test_dict_requests_go_through_the_loader_and_keep_their_id(isolated_cache, data_dir):
    session = editbench.load(model="tiny-llama", stats={"n_tokens": 2000}, data_dir=str(data_dir))
    record = {"prompt": "The capital of France is", "subject": "France", "target_new": "Rome",
              "ground_truth": "Paris", "rephrase_prompt": "France's capital is",
              "locality_prompt": "The Louvre is in", "locality_ground_truth": "Paris"}
    [request] = session.as_requests([record])
    assert (request.prompt, request.target_true) == ("The capital of {} is", "Paris")
    assert session.as_requests([dict(record)])[0].case_id == request.case_id  # same content, same id
    with pytest.raises(DataError, match="in-memory records record 0.*subject"):
        session.as_requests([{**record, "subject": "Spain"}])


def test_overrides_are_written_as_on_the_command_line():
    assert to_overrides({"stats": {"n_tokens": 2000, "corpus": "demo"}, "eval_at": [10, 50], "debug": True,
                         "num_steps": None, "data_dir": "/data/my files"}) == [
        "stats.n_tokens=2000", "stats.corpus=demo", "eval_at=[10,50]", "debug=true", "num_steps=null",
        "data_dir='/data/my files'"]
    cfg = compose(to_overrides({"model": "tiny-llama", "method": "ft", "data_dir": "/data/my files"}))
    assert (cfg.model.name, cfg.method.name, cfg.data_dir) == ("tiny-llama", "ft", "/data/my files")
