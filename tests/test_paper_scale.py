"""Paper-scale readiness (issue 21): the paper models' exact shapes, state that follows the model's
device, no per-step SVD unless asked, C0 from a `datasets` corpus, and the measurement script."""

from __future__ import annotations

import copy
import importlib.util
import sys

import pytest
import torch
from omegaconf import OmegaConf

from editbench.errors import ConfigError, DataError
from editbench.locate.context import EditContext
from editbench.locate.stats import SecondMoments, StatsParams
from editbench.methods import build_editor
from editbench.models.loading import load_model
from editbench.telemetry import Telemetry, matrix_stats
from tests.conftest import REPO

# Parameter totals of the published checkpoints (their model cards: 8.03B, 7.62B, 13.0B).
PUBLISHED = {"llama3-8b": (4096, 14336, 8_030_261_248), "qwen2.5-7b": (3584, 18944, 7_615_616_512),
             "llama2-13b": (5120, 13824, 13_015_864_320)}


def random_cfg(name: str, **kw) -> dict:
    return {"name": name, "source": "random", "path": "not/a/dir", "dtype": "bfloat16", "device": "meta", **kw}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_random_shape_has_the_published_widths_and_parameter_count(name):
    d, m, total = PUBLISHED[name]
    lm = load_model(random_cfg(name))  # on the meta device: the exact shapes, no memory
    assert (lm.spec.hidden_size, lm.spec.ffn_size) == (d, m)
    assert sum(p.numel() for p in lm.model.parameters()) == total
    assert {p.dtype for p in lm.model.parameters()} == {torch.bfloat16}
    assert max(lm.tokenizer.get_vocab().values()) < lm.model.config.vocab_size  # ids inside the vocabulary


def test_depth_reduced_shape_keeps_the_widths():
    lm = load_model(random_cfg("llama3-8b", n_layers=9))
    assert (lm.spec.n_layers, lm.spec.hidden_size, lm.spec.ffn_size) == (9, 4096, 14336)
    with pytest.raises(ConfigError, match="1..32"):
        load_model(random_cfg("llama3-8b", n_layers=33))


def test_random_shape_runs_forward_in_bfloat16_with_a_few_layers():
    # llama2-13b has the smallest vocabulary; one block at full width, on the CPU
    lm = load_model({**random_cfg("llama2-13b", n_layers=1), "device": "cpu"})
    ids = lm.tokenizer(["The capital of France is"], return_tensors="pt")
    logits = lm.model(**ids).logits
    assert logits.shape[-1] == 32000 and logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_telemetry_without_spectra_runs_no_svd_and_keeps_the_norms(tiny):
    layer = 1
    W0 = tiny.spec.get_weight(tiny.model, layer).clone()
    tiny.spec.set_weight(tiny.model, layer, W0 * 1.5)
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            stats = Telemetry(tiny.spec, tiny.model, {layer: W0}, spectra=False)()[str(layer)]
        ops = {e.key for e in prof.key_averages()}
        assert not any("svd" in op for op in ops), ops  # O(d·m) per step, not O(d²·m)
        exact = matrix_stats(tiny.spec.get_weight(tiny.model, layer), W0)
        assert stats["fro"] == pytest.approx(exact["fro"]) and stats["delta_fro"] == pytest.approx(exact["delta_fro"])
        assert "cond" not in stats
        assert "cond" in Telemetry(tiny.spec, tiny.model, {layer: W0})()[str(layer)]  # exact stays the default
    finally:
        tiny.spec.set_weight(tiny.model, layer, W0)


def test_telemetry_spectra_is_a_checked_config_key():
    from editbench.config import compose
    from editbench.schema.check import validate

    assert compose([]).telemetry_spectra == "exact"
    assert not validate(compose(["telemetry_spectra=off"]))
    with pytest.raises(ConfigError, match="telemetry_spectra"):
        validate(compose(["telemetry_spectra=sometimes"]))


# --- state on the model's device: a model on `meta` stands in for a GPU ----------------------------


@pytest.fixture()
def meta_tiny(tiny):
    model = copy.deepcopy(tiny.model).to("meta")
    return model, tiny


def test_alphaedit_memory_lives_on_the_models_device(meta_tiny):
    from tests.test_mose import FixedStats

    model, tiny = meta_tiny
    ctx = EditContext(model, tiny.tokenizer, tiny.spec, [["{}"]], FixedStats(tiny.spec.ffn_size))
    cfg = OmegaConf.create({"name": "alphaedit", "layers": [1, 2], "mom2_update_weight": 1.0, "value": {"steps": 2}})
    editor = build_editor("alphaedit", ctx, cfg)
    assert {C.device.type for C in editor.cache_c.values()} == {"meta"}  # was: C_p on the host
    editor.load_state_dict({"cache_c.1": torch.eye(tiny.spec.ffn_size, dtype=torch.float64)})
    assert editor.cache_c[1].device.type == "meta" and editor.cache_c[1].dtype == torch.float32


def test_second_moments_are_read_onto_the_layers_device_and_held_only_when_used(tiny, meta_tiny, data_dir,
                                                                               isolated_cache):
    model, _ = meta_tiny
    params = StatsParams(n_tokens=300, max_len=32)
    stats = SecondMoments(tiny.model, tiny.tokenizer, tiny.spec, tiny.fingerprint, params, data_dir)
    stats.prepare([1, 2])  # computed in one pass and cached, none kept in memory
    assert stats.path(1).is_file() and stats.path(2).is_file() and not stats._memory
    c0 = stats(1)
    assert c0.dtype == torch.float64 and c0.device.type == "cpu"
    stats.release(1)
    assert 1 not in stats._memory
    on_meta = SecondMoments(model, tiny.tokenizer, tiny.spec, tiny.fingerprint, params, data_dir)
    assert on_meta(1).device.type == "meta"  # was: always on the host


def test_mose_drops_c0_once_it_has_its_gram(tiny, data_dir, isolated_cache):
    stats = SecondMoments(tiny.model, tiny.tokenizer, tiny.spec, tiny.fingerprint, StatsParams(n_tokens=300, max_len=32),
                          data_dir)
    ctx = EditContext(tiny.model, tiny.tokenizer, tiny.spec, [["{}"]], stats)
    cfg = OmegaConf.create({"name": "mose", "mom2_update_weight": 10.0, "layer_selection": "fixed",
                            "fixed_layers": [1], "candidate_layers": [1], "value": {"steps": 2}})
    editor = build_editor("mose", ctx, cfg)
    W0 = editor.original(1)
    G = editor.gram(1)
    torch.testing.assert_close(G, W0 @ stats(1) @ W0.T)  # stats(1) reads it back from the cache
    stats.release(1)
    editor.gram(1)
    assert 1 not in stats._memory


# --- C0 from a `datasets` corpus ----------------------------------------------------------------------


@pytest.fixture()
def saved_corpus(tmp_path, data_dir):
    from datasets import Dataset, DatasetDict

    from editbench.locate.stats import corpus_text

    text, _ = corpus_text("wikitext2", data_dir)
    paras = [p for p in text.split("\n") if len(p.strip()) > 40][:40]
    ds = Dataset.from_dict({"text": paras, "id": list(range(len(paras)))})
    ds.save_to_disk(str(tmp_path / "ds"))
    DatasetDict({"validation": ds}).save_to_disk(str(tmp_path / "dsdict"))
    return tmp_path, paras


def test_c0_from_a_saved_dataset_equals_c0_from_the_same_text(tiny, saved_corpus, isolated_cache):
    root, paras = saved_corpus
    n = min(30, len(paras))  # the fixtures' statistics text (no shared data) has fewer paragraphs
    (root / "same.txt").write_text("\n".join(paras[:n]))

    def stats(corpus, **kw):
        params = StatsParams(corpus=str(corpus), n_tokens=10**6, max_len=64, **kw)
        return SecondMoments(tiny.model, tiny.tokenizer, tiny.spec, tiny.fingerprint, params, None)

    from_ds = stats(root / "ds", n_samples=n)
    assert f":n={n}:" in from_ds.corpus_id and from_ds.corpus_id.startswith("datasets:")
    torch.testing.assert_close(from_ds(1), stats(root / "same.txt")(1))
    assert stats(root / "ds", n_samples=n - 1).path(1) != from_ds.path(1)  # the row count is in the cache key
    from_dict = stats(root / "dsdict", n_samples=n, split="validation")
    torch.testing.assert_close(from_dict(1), from_ds(1))
    with pytest.raises(DataError, match="stats.split"):
        stats(root / "dsdict", n_samples=n)(1)
    with pytest.raises(DataError, match="stats.text_field"):
        stats(root / "ds", text_field="body")(1)


def test_a_hub_corpus_needs_a_row_count():
    from editbench.locate.corpus import datasets_text, is_datasets_corpus

    assert is_datasets_corpus("wikimedia/wikipedia") and not is_datasets_corpus("wikitext2")
    with pytest.raises(DataError, match="stats.n_samples"):
        datasets_text("wikimedia/wikipedia", "20231101.en", "train", "text", None)


# --- the measurement script ---------------------------------------------------------------------------


def _measure():
    """experiments/paper-scale/measure.py as module `measure` (on sys.path: its worker processes import it)."""
    folder = str(REPO / "experiments" / "paper-scale")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("measure")


@pytest.mark.parametrize("model", ["llama3-8b", "qwen2.5-7b"])
def test_every_method_composes_on_the_depth_reduced_paper_shapes(model):
    """The remapped layers of every method fit the depth-reduced model (schema's layer rules)."""
    from editbench.config import compose
    from editbench.schema.check import validate

    measure = _measure()
    for method in measure.METHODS:
        overrides = [f"model={model}", "model.source=random", "model.n_layers=9", f"method={method}",
                     *measure.remap_overrides(method, 9, False), *measure.smoke_overrides(method, 2)]
        validate(compose(overrides), n_layers=9)


def test_measurement_runs_every_phase_on_a_tiny_model(tmp_path, run_data, monkeypatch):
    monkeypatch.setenv("EDITBENCH_DATA", str(run_data))
    monkeypatch.setenv("EDITBENCH_CACHE", str(tmp_path / "cache"))
    measure = _measure()
    out = tmp_path / "out"
    measure.main(["--model", "tiny-llama", "--methods", "memit,alphaedit", "--smoke", "--single", "2", "--batch", "3",
                  "--n-tokens", "300", "--threads", "1", "--low-rank-projector", "--out", str(out)])
    table = measure.table(__import__("json").loads((out / "report.json").read_text()))
    assert list(table["cell"]) == ["single", "batch3"] * 2
    assert (table["step1 values s/edit"] > 0).all() and (table["peak RSS MiB"] > 0).all()
    assert (out / "methods.csv").is_file() and "alphaedit" in (out / "report.md").read_text()
    # cost.py on a report measured on a "GPU": per-edit seconds are the measured steady-state steps
    import cost

    report = __import__("json").loads((out / "report.json").read_text())
    report["machine"]["gpu"] = "measured"
    rows = cost.cell_rows(report, "llama3-8b", "h100").set_index("method")
    steps = report["cells"][0]["cells"]["single"]["steps"][1:]
    # ... with the smoke run's 2 value steps scaled to the paper configs' 25
    assert report["value_steps"] == 2
    assert rows.loc["memit", "s/edit single"] == pytest.approx(
        sum(s["phases"]["keys"] + 12.5 * s["phases"]["values"] + s["phases"]["solve"] for s in steps))
    assert (rows["Table 1 GPU-h per cell"] > 0).all()
    # --update re-measures one method in place: the other method's cell and C0 stay as they were
    memit_before = next(c for c in report["cells"] if c["method"] == "memit")
    measure.main(["--model", "tiny-llama", "--methods", "alphaedit", "--smoke", "--single", "2", "--batch", "3",
                  "--n-tokens", "300", "--threads", "1", "--low-rank-projector", "--update", "--out", str(out)])
    updated = __import__("json").loads((out / "report.json").read_text())
    assert [c["method"] for c in updated["cells"]] == ["memit", "alphaedit"]
    assert updated["cells"][0] == memit_before and updated["c0"] == report["c0"]
    assert updated["updates"][0]["methods"] == ["alphaedit"] and "re-measured alphaedit" in (out / "report.md").read_text()


def test_kernels_project_by_flop_count():
    rows = _measure().kernels(64, 224, "cpu", [32], 1)
    assert len(rows) == 7 and all(r["m"] == 32 and r["d"] == 9 for r in rows)
    for r in rows:
        assert r["projected seconds at paper width"] > r["seconds"] > 0
