"""The demo set shipped in the package: the fallback data directory, its schema, its statistics text."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from editbench.config import CONF_DIR
from editbench.data import load_requests, resolve_data_dir
from editbench.demo import EDIT_FILE, STATS_FILE, demo_dir, is_demo_dir
from editbench.errors import DataError
from editbench.locate.stats import corpus_text

REPO = Path(__file__).resolve().parents[1]


def counterfact():
    return OmegaConf.load(CONF_DIR / "dataset" / "counterfact.yaml")


def test_no_data_dir_falls_back_to_the_demo_with_a_warning(monkeypatch, caplog):
    monkeypatch.delenv("EDITBENCH_DATA", raising=False)
    with caplog.at_level(logging.WARNING, logger="editbench.data.loaders"):
        path = resolve_data_dir(None)
    assert path == demo_dir() and is_demo_dir(path)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "demo set" in record.getMessage() and "data_dir=" in record.getMessage()
    assert "EDITBENCH_DATA" in record.getMessage()


@pytest.mark.full_data("EasyEdit's CounterFact counterfact-edit.json, whose record schema the demo must mirror")
def test_demo_records_mirror_easyedit_counterfact_exactly(shared_data):
    """Same keys in the same order and the same value types as EasyEdit's counterfact-edit.json."""
    reference = json.loads((shared_data / "counterfact_easyedit_mend_format" / "counterfact-edit.json").read_text())[0]
    records = json.loads((demo_dir() / EDIT_FILE).read_text(encoding="utf-8"))
    assert len(records) >= 60
    for rec in records:
        assert list(rec) == list(reference)
        assert {k: type(v) for k, v in rec.items()} == {k: type(v) for k, v in reference.items()}
    ids = [r["case_id"] for r in records]
    assert len(set(ids)) == len(ids) and min(ids) > 21_918  # never a real CounterFact case_id


def test_the_default_dataset_reads_the_demo_as_a_data_directory():
    requests = load_requests(counterfact(), demo_dir())
    assert len(requests) >= 60
    first = requests[0]
    assert (first.prompt_text, first.target_new, first.target_true) == ("The capital of France is", "Rome", "Paris")
    assert all(r.target_new != r.target_true and r.locality_prompts for r in requests)


def test_more_edits_than_the_demo_holds_is_a_clear_error():
    n = len(load_requests(counterfact(), demo_dir()))
    with pytest.raises(DataError, match=rf"has {n} records; num_edits={n + 1} .* demo set .*data_dir="):
        load_requests(counterfact(), demo_dir(), num_edits=n + 1)


def test_other_datasets_on_the_demo_say_what_to_do():
    zsre = OmegaConf.load(CONF_DIR / "dataset" / "zsre.yaml")
    with pytest.raises(DataError, match=r"demo set .* holds only .*dataset=counterfact.*data_dir=.*EDITBENCH_DATA"):
        load_requests(zsre, demo_dir(), num_edits=1)


def test_the_statistics_text_stands_in_for_wikitext_on_the_demo(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="editbench.locate.stats"):
        text, corpus_id = corpus_text("wikitext2", demo_dir())
    assert corpus_id.startswith("demo:") and "demo statistics text" in caplog.text
    assert text == (demo_dir() / STATS_FILE).read_text(encoding="utf-8")
    assert len(text.split()) > 3000 and len(text.encode()) < 300_000
    assert corpus_text("demo", tmp_path)[1] == corpus_id  # stats.corpus=demo works with any data dir


def test_package_data_ships_every_demo_and_config_file():
    """pyproject's package-data globs (relative to src/editbench) must cover every demo file and config."""
    tomllib = pytest.importorskip("tomllib")
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["editbench"]
    package = REPO / "src" / "editbench"
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    wanted = {p for p in demo_dir().rglob("*") if p.is_file() and p.suffix != ".pyc" and p.name != "__init__.py"}
    wanted |= {p for p in CONF_DIR.rglob("*") if p.is_file()}
    assert wanted and wanted <= shipped, sorted(str(p) for p in wanted - shipped)


@pytest.mark.smollm2
def test_every_demo_fact_is_known_to_smollm2(smollm2):
    """The check of experiments/demo/check_demo.py, on the shipped file: each true answer is top-1."""
    import torch

    from editbench.locate.forward import logits_at
    from editbench.locate.prompts import encode, pad_id, pad_right, target_ids

    requests = load_requests(counterfact(), demo_dir())
    tok = smollm2.tokenizer
    for start in range(0, len(requests), 16):
        chunk = requests[start : start + 16]
        ids = [encode(tok, r.prompt_text) for r in chunk]
        batch = pad_right(ids, pad_id(tok))
        with torch.no_grad():
            logits = logits_at(smollm2.model, batch, torch.arange(len(ids)), torch.tensor([len(x) - 1 for x in ids]))
        for r, row in zip(chunk, logits, strict=True):
            assert int(row.argmax()) == target_ids(tok, r.target_true)[0], r.case_id
