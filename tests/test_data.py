"""Edit-data loaders: real-file counts and mappings, selection, and one message per malformed record."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from editbench.config import CONF_DIR
from editbench.data import EditRequest, load_requests, resolve_data_dir
from editbench.errors import ConfigError, DataError
from tests.conftest import FIXTURE_DATA

REPO = Path(__file__).parents[1]
CONF = CONF_DIR / "dataset"
FIXTURES = Path(__file__).parent / "fixtures"


# What the loaders must read from each data directory the tests run on (conftest's `data_dir`): the
# full offline data, or the small fixtures in tests/fixtures/data when a clone has nothing beside it.
FULL = {"counterfact": 10_000, "enriched": 239, "rome": 500, "zsre": 1_037, "concepts": 112,
        "cf_first": ("0", "Danielle Darrieux", "The mother tongue of {} is", "English", "French",
                     "Where Danielle Darrieux is from, people speak the language of",
                     "Michel Rocard is a native speaker of", "French"),
        "rome_first": ("20952", "{} is located in", "Angola", "Antarctica", "Africa", "P30"),
        "zsre_first": ("When was the inception of {}?", "2011"),
        "concept_first": ("dog", "The term dog refers to", "a domesticated carnivorous mammal", "Animal"),
        "train_first": "2", "val_first": "10"}
SMALL = {"counterfact": 8, "enriched": 3, "rome": 4, "zsre": 6, "concepts": 4,
         "cf_first": ("0", "Brazil", "The official language of {} is", "German", "Portuguese",
                      "In Brazil, most people speak", "The official language of Mozambique is", "Portuguese"),
         "rome_first": ("1", "{} is located in the continent of", "Kenya", "Asia", "Africa", "P30"),
         "zsre_first": ("When was the inception of {}?", "1932"),
         "concept_first": ("owl", "The term owl refers to", "a nocturnal bird of prey", "Animal"),
         "train_first": "8", "val_first": "10"}


@pytest.fixture(scope="module")
def expect(data_dir) -> dict:
    return SMALL if data_dir == FIXTURE_DATA else FULL


def dataset(name: str, **overrides):
    """A conf/dataset/<name>.yaml as Hydra would compose it, with `dataset.<key>=value` overrides."""
    return OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml"), overrides)


# --------------------------------------------------------------------------- resolve_data_dir


def test_resolve_data_dir_prefers_config_over_env(tmp_path, monkeypatch):
    other = tmp_path / "env"
    other.mkdir()
    monkeypatch.setenv("EDITBENCH_DATA", str(other))
    assert resolve_data_dir(tmp_path) == tmp_path
    assert resolve_data_dir(str(tmp_path)) == tmp_path


def test_resolve_data_dir_falls_back_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EDITBENCH_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("") == tmp_path


def test_resolve_data_dir_unset_uses_the_demo_and_says_how_to_fix(monkeypatch, caplog):
    from editbench.demo import demo_dir

    monkeypatch.delenv("EDITBENCH_DATA", raising=False)
    with caplog.at_level(logging.WARNING):
        assert resolve_data_dir(None) == demo_dir()
    msg = caplog.text
    assert "demo set" in msg and "data_dir=" in msg and "EDITBENCH_DATA" in msg and "../shared/data" in msg


@pytest.mark.parametrize("via_env", [False, True])
def test_resolve_data_dir_missing_dir_is_named(tmp_path, monkeypatch, via_env):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("EDITBENCH_DATA", str(missing))
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        resolve_data_dir(None if via_env else missing)


# --------------------------------------------------------------------------- CounterFact


def test_counterfact_edit_split(data_dir, expect):
    reqs = load_requests(dataset("counterfact"), data_dir)
    assert len(reqs) == expect["counterfact"]
    first = reqs[0]
    case_id, subject, prompt, new, true, rephrase, locality, answer = expect["cf_first"]
    assert (first.case_id, first.subject, first.prompt) == (case_id, subject, prompt)
    assert first.prompt_text == prompt.replace("{}", subject)
    assert (first.target_new, first.target_true) == (new, true)
    assert first.rephrase_prompts == (rephrase,)
    assert first.locality_prompts == (locality,)
    assert first.locality_answers == (answer,)
    assert first.dataset == "counterfact"
    assert all(r.prompt.count("{}") == 1 and r.target_new == r.target_new.strip() for r in reqs)
    assert len({r.case_id for r in reqs}) == expect["counterfact"]


@pytest.mark.full_data("all 21,919 CounterFact case_ids in counterfact-{edit,train,val}.json")
def test_counterfact_splits_cover_all_case_ids(shared_data):
    data_dir = shared_data
    sizes = {}
    ids: set[str] = set()
    for split in ("edit", "train", "val"):
        reqs = load_requests(dataset("counterfact", split=split, rome_file=None), data_dir)
        sizes[split] = len(reqs)
        ids |= {r.case_id for r in reqs}
    assert sizes == {"edit": 10_000, "train": 10_000, "val": 1_919}
    assert ids == {str(i) for i in range(21_919)}


def test_counterfact_rome_enrichment(data_dir, expect):
    reqs = load_requests(dataset("counterfact"), data_dir)
    enriched = [r for r in reqs if r.neighborhood_prompts]
    assert len(enriched) == expect["enriched"]  # the ROME sample's case_ids that fall in the edit split
    assert all(len(r.neighborhood_prompts) == 10 for r in enriched)
    assert all(len(r.extra["paraphrase_prompts"]) == 2 for r in enriched)
    assert all(len(r.rephrase_prompts) == 1 for r in enriched)  # Generalization keeps EasyEdit's prompt
    plain = load_requests(dataset("counterfact", rome_file=None), data_dir, num_edits=min(50, len(reqs)))
    assert not any(r.neighborhood_prompts for r in plain)


def test_counterfact_missing_rome_file_only_warns(data_dir, caplog):
    with caplog.at_level(logging.WARNING):
        reqs = load_requests(dataset("counterfact", rome_file="nope.json"), data_dir, num_edits=5)
    assert len(reqs) == 5 and "nope.json" in caplog.text


def test_counterfact_rome_sample(data_dir, expect):
    reqs = load_requests(dataset("counterfact_rome"), data_dir)
    assert len(reqs) == expect["rome"]
    r = reqs[0]
    case_id, prompt, subject, new, true, relation = expect["rome_first"]
    assert (r.case_id, r.prompt, r.subject) == (case_id, prompt, subject)
    assert (r.target_new, r.target_true) == (new, true)
    assert all(len(x.neighborhood_prompts) == 10 and len(x.rephrase_prompts) == 2 for x in reqs)
    assert all(x.locality_prompts == x.neighborhood_prompts for x in reqs)
    assert all(x.locality_answers == (x.target_true,) * 10 for x in reqs)
    assert r.extra["relation_id"] == relation


def test_rome_sample_agrees_with_easyedit_records(data_dir):
    rome = {r.case_id: r for r in load_requests(dataset("counterfact_rome"), data_dir)}
    easy = [r for r in load_requests(dataset("counterfact"), data_dir) if r.case_id in rome]
    for r in easy:
        assert (r.prompt, r.subject, r.target_true) == (rome[r.case_id].prompt, rome[r.case_id].subject,
                                                        rome[r.case_id].target_true)


# --------------------------------------------------------------------------- ZsRE


def _raw(data_dir: Path, file: str) -> list:
    return json.loads((data_dir / file).read_text(encoding="utf-8"))


def test_zsre_easyedit_convention(data_dir, expect):
    cfg = dataset("zsre")
    raw = _raw(data_dir, cfg.file)
    reqs = load_requests(cfg, data_dir)
    assert len(reqs) == expect["zsre"] and cfg.scorer == "easyedit"
    assert [r.target_new for r in reqs] == [x["alt"].strip() for x in raw]
    assert [r.target_true for r in reqs] == [x["answers"][0].strip() for x in raw]
    assert [r.locality_prompts for r in reqs] == [(x["loc"],) for x in raw]
    assert [r.locality_answers for r in reqs] == [(x["loc_ans"],) for x in raw]
    r = reqs[0]
    prompt, pred = expect["zsre_first"]
    assert (r.case_id, r.prompt) == ("0", prompt)
    assert r.prompt_text == raw[0]["src"]
    assert "portability" in r.extra and r.extra["pred"] == pred
    assert any(x["alt"] != x["alt"].strip() for x in raw)  # the file has padded targets; we strip them


def test_zsre_memit_convention(data_dir, expect):
    cfg = dataset("zsre", convention="memit")
    raw = _raw(data_dir, cfg.file)
    reqs = load_requests(cfg, data_dir)
    assert len(reqs) == expect["zsre"] and cfg.scorer == "memit" and "memit" in cfg.label
    assert [r.target_new for r in reqs] == [x["answers"][0].strip() for x in raw]
    assert all(r.target_true is None for r in reqs)
    assert [r.locality_prompts for r in reqs] == [(x["loc"] + "?",) for x in raw]
    assert [r.locality_answers for r in reqs] == [(x["loc_ans"],) for x in raw]


# --------------------------------------------------------------------------- ConceptEdit schema


@pytest.mark.parametrize("setting", ["inter", "intra"])
def test_conceptedit_substitute(data_dir, expect, setting):
    cfg = dataset("conceptedit", setting=setting)
    assert cfg.file == f"editbench_concepts/{setting}.json"
    assert cfg.label == "concepts (ConceptEdit schema, not the original data)"
    reqs = load_requests(cfg, data_dir)
    assert len(reqs) == expect["concepts"]
    r = reqs[0]
    subject, rephrase, definition, superclass = expect["concept_first"]
    assert (r.subject, r.prompt, r.rephrase_prompts) == (subject, "The definition of {} is", (rephrase,))
    assert r.target_true.startswith(definition)
    assert len(r.extra["instance_prompts"]) == 2 and r.extra["superclass"] == superclass


def test_conceptedit_fixture():
    reqs = load_requests(dataset("conceptedit", file="conceptedit_mini.json"), FIXTURES)
    assert [r.case_id for r in reqs] == ["0", "1", "2"]
    violin, comet, tram = reqs
    assert violin.extra["instance_prompts"] == ("Whether Stradivarius Messiah belongs to category violin?",
                                                "Whether Guarneri Vieuxtemps belongs to category violin?")
    # case-insensitive subject match keeps the prompt's spelling, and the record's in extra
    assert (comet.prompt, comet.subject, comet.extra["subject_as_recorded"]) == ("The definition of {} is", "Comet",
                                                                                 "comet")
    assert comet.target_new.startswith("a small") and comet.target_new.endswith("surface")
    assert comet.target_true is None and len(comet.extra["instance_prompts"]) == 1
    assert tram.locality_answers == ("a slowly moving mass of ice formed from compacted snow on land",)


# --------------------------------------------------------------------------- selection


def test_offset_and_num_edits_tile_the_stream(data_dir, expect):
    cfg, n = dataset("zsre"), expect["zsre"]
    total, first = min(30, n), min(10, n // 2)
    whole = load_requests(cfg, data_dir, num_edits=total)
    chunks = (load_requests(cfg, data_dir, num_edits=first)
              + load_requests(cfg, data_dir, num_edits=total - first, offset=first))
    assert chunks == whole and [r.case_id for r in whole] == [str(i) for i in range(total)]
    assert load_requests(cfg, data_dir, offset=n - 3) == load_requests(cfg, data_dir)[n - 3:]


def test_random_selection_is_a_seeded_permutation(data_dir, expect):
    cfg, n = dataset("zsre", selection="random"), expect["zsre"]
    a = load_requests(cfg, data_dir, seed=3)
    assert a == load_requests(cfg, data_dir, seed=3)
    assert sorted(int(r.case_id) for r in a) == list(range(n))
    assert [r.case_id for r in a] != [str(i) for i in range(n)]
    assert a != load_requests(cfg, data_dir, seed=4)
    assert load_requests(cfg, data_dir, seed=3, num_edits=2, offset=3) == a[3:5]


def test_too_many_edits_says_how_many_exist(data_dir, expect):
    n = expect["zsre"]
    with pytest.raises(DataError, match=f"has {n} records"):
        load_requests(dataset("zsre"), data_dir, num_edits=2 * n)
    with pytest.raises(DataError, match=f"has {n} records"):
        load_requests(dataset("zsre"), data_dir, offset=n)


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [("format", "csv", "easyedit, rome, zsre, conceptedit"),
     ("convention", "rome", "easyedit, memit"),
     ("selection", "last", "first, random"),
     ("on_bad_record", "ignore", "error, skip")],
)
def test_unknown_config_values_list_the_valid_ones(data_dir, key, value, valid):
    with pytest.raises(ConfigError, match=valid):
        load_requests(dataset("zsre", **{key: value}), data_dir, num_edits=1)


def test_bad_num_edits_and_offset_are_config_errors(data_dir):
    with pytest.raises(ConfigError):
        load_requests(dataset("zsre"), data_dir, num_edits=0)
    with pytest.raises(ConfigError):
        load_requests(dataset("zsre"), data_dir, offset=-1)


# --------------------------------------------------------------------------- malformed files and records

GOOD = {
    "case_id": 42,
    "prompt": "The mother tongue of Danielle Darrieux is",
    "subject": "Danielle Darrieux",
    "target_new": "English",
    "ground_truth": "French",
    "rephrase_prompt": "Where Danielle Darrieux is from, people speak the language of",
    "locality_prompt": "Michel Rocard is a native speaker of",
    "locality_ground_truth": "French",
}


def write(tmp_path: Path, content, name: str = "cf.json") -> dict:
    """Write `content` (JSON-able, or raw text) and return a dict config that reads it."""
    text = content if isinstance(content, str) else json.dumps(content)
    (tmp_path / name).write_text(text, encoding="utf-8")
    return {"name": "cf", "format": "easyedit", "file": name, "selection": "first"}


def with_field(**changes) -> dict:
    record = {**GOOD, **changes}
    return {k: v for k, v in record.items() if v is not ...}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("not a record", "record 2: is not a JSON object"),
        (with_field(target_new=...), "record 2 (case_id 42): field 'target_new' is missing"),
        (with_field(target_new=7), "record 2 (case_id 42): field 'target_new' must be a string, got a number"),
        (with_field(target_new=["English"]), "field 'target_new' must be a string, got a list"),
        (with_field(ground_truth=""), "record 2 (case_id 42): field 'ground_truth' is empty"),
        (with_field(target_new="  \t"), "record 2 (case_id 42): field 'target_new' is empty"),
        (with_field(prompt="The mother tongue of D. Darrieux is"), "field 'prompt' does not contain the subject"),
        (with_field(case_id=[1]), "field 'case_id' must be an integer or a non-empty string"),
        (with_field(prompt="The {} of Danielle Darrieux is"), "field 'prompt' already contains '{}'"),
    ],
)
def test_each_malformed_record_gives_one_located_message(tmp_path, record, expected):
    cfg = write(tmp_path, [GOOD, {**GOOD, "case_id": 43}, record])
    with pytest.raises(DataError) as err:
        load_requests(cfg, tmp_path)
    msg = str(err.value)
    assert msg.startswith("cf.json record 2") and expected in msg
    assert "offset=/num_edits=" in msg


def test_malformed_records_outside_the_selection_are_not_checked(tmp_path):
    cfg = write(tmp_path, [GOOD, {**GOOD, "case_id": 43}, "broken"])
    assert [r.case_id for r in load_requests(cfg, tmp_path, num_edits=2)] == ["42", "43"]


def test_unparseable_file_names_line_and_column(tmp_path):
    cfg = write(tmp_path, '[\n  {"case_id": 1,\n   "prompt": oops}\n]')
    with pytest.raises(DataError, match=r"cf\.json is not valid JSON: .* line 3, column 14"):
        load_requests(cfg, tmp_path)


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(DataError) as err:
        load_requests({"name": "cf", "format": "easyedit", "file": "sub/absent.json"}, tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "sub" / "absent.json") in msg and "data_dir=" in msg and "EDITBENCH_DATA" in msg


def test_top_level_must_be_a_list(tmp_path):
    cfg = write(tmp_path, {"records": [GOOD]})
    with pytest.raises(DataError, match=r"cf\.json: the top level must be a JSON list of records, got an object"):
        load_requests(cfg, tmp_path)


def test_missing_config_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'file'"):
        load_requests({"name": "cf", "format": "easyedit"}, tmp_path)


def test_rome_format_errors_name_nested_fields(tmp_path):
    rome = {"case_id": 5, "requested_rewrite": {"prompt": "{} is located in", "subject": "Angola",
                                                "target_new": {"str": "Antarctica"}, "target_true": {"str": ""}},
            "paraphrase_prompts": ["Angola is in"], "neighborhood_prompts": ["Ghana is in"]}
    (tmp_path / "rome.json").write_text(json.dumps([rome]), encoding="utf-8")
    cfg = {"name": "r", "format": "rome", "file": "rome.json"}
    with pytest.raises(DataError, match=r"record 0 \(case_id 5\): field 'requested_rewrite.target_true.str' is empty"):
        load_requests(cfg, tmp_path)
    rome["requested_rewrite"]["target_true"]["str"] = "Africa"
    rome["requested_rewrite"]["prompt"] = "Angola is located in"
    (tmp_path / "rome.json").write_text(json.dumps([rome]), encoding="utf-8")
    with pytest.raises(DataError, match=r"field 'requested_rewrite.prompt' must contain '\{\}' exactly once"):
        load_requests(cfg, tmp_path)
    rome["requested_rewrite"]["prompt"] = "{} is located in"
    rome["neighborhood_prompts"] = "Ghana is in"
    (tmp_path / "rome.json").write_text(json.dumps([rome]), encoding="utf-8")
    with pytest.raises(DataError, match="field 'neighborhood_prompts' must be a list of strings, got a string"):
        load_requests(cfg, tmp_path)


def test_rome_enrichment_mismatch_names_the_sample(tmp_path):
    rome = {"case_id": 42, "requested_rewrite": {"prompt": "The mother tongue of {} is", "subject": "Someone Else",
                                                 "target_new": {"str": "English"}, "target_true": {"str": "French"}},
            "paraphrase_prompts": ["a", "b"], "neighborhood_prompts": ["c"]}
    (tmp_path / "rome.json").write_text(json.dumps([rome]), encoding="utf-8")
    cfg = {**write(tmp_path, [GOOD]), "rome_file": "rome.json"}
    with pytest.raises(DataError, match=r"rome\.json record 0 \(case_id 42\): field 'requested_rewrite.subject'"):
        load_requests(cfg, tmp_path)


# --------------------------------------------------------------------------- subject handling and skipping


def test_subject_last_occurrence_and_case_fallback(tmp_path):
    records = [
        with_field(prompt="Danielle Darrieux said Danielle Darrieux speaks"),
        with_field(case_id=43, prompt="The mother tongue of DANIELLE darrieux is"),
    ]
    last, folded = load_requests(write(tmp_path, records), tmp_path)
    assert last.prompt == "Danielle Darrieux said {} speaks"
    assert (folded.prompt, folded.subject) == ("The mother tongue of {} is", "DANIELLE darrieux")
    assert folded.prompt_text == "The mother tongue of DANIELLE darrieux is"
    assert folded.extra["subject_as_recorded"] == "Danielle Darrieux"


def test_targets_are_stripped(tmp_path):
    (req,) = load_requests(write(tmp_path, [with_field(target_new="  English \n", ground_truth=" French")]), tmp_path)
    assert (req.target_new, req.target_true) == ("English", "French")


def test_skip_drops_and_reports_bad_records(tmp_path, caplog):
    records = [{**GOOD, "case_id": i} for i in range(6)]
    records[1] = with_field(case_id=1, target_new="")
    records[3] = "junk"
    cfg = {**write(tmp_path, records), "on_bad_record": "skip"}
    with caplog.at_level(logging.WARNING):
        reqs = load_requests(cfg, tmp_path)
    assert [r.case_id for r in reqs] == ["0", "2", "4", "5"]
    assert "skipped 2 malformed record(s)" in caplog.text and "file indices 1, 3" in caplog.text
    # offset counts valid records, so chunks tile the cleaned stream
    assert [r.case_id for r in load_requests(cfg, tmp_path, num_edits=2, offset=1)] == ["2", "4"]
    with pytest.raises(DataError, match=r"has 4 valid records \(2 malformed ones skipped\)"):
        load_requests(cfg, tmp_path, num_edits=5)


def test_same_arguments_same_requests(data_dir, expect):
    cfg, n = dataset("counterfact", selection="random"), min(20, expect["counterfact"] - 3)
    a = load_requests(cfg, data_dir, num_edits=n, offset=3, seed=11)
    b = load_requests(cfg, data_dir, num_edits=n, offset=3, seed=11)
    assert a == b and all(isinstance(r, EditRequest) for r in a)
    assert [r.extra for r in a] == [r.extra for r in b]


def test_plain_dict_config_resolves_relative_interpolation(data_dir, expect):
    cfg = {"name": "counterfact", "format": "easyedit", "split": "val",
           "file": "counterfact_easyedit_mend_format/counterfact-${.split}.json"}
    assert load_requests(cfg, data_dir, num_edits=1)[0].case_id == expect["val_first"]


def test_hydra_composes_the_dataset_group(data_dir, expect):
    hydra = pytest.importorskip("hydra")
    import editbench.config  # noqa: F401  (registers the schemas conf/*.yaml name in their defaults lists)

    with hydra.initialize_config_dir(config_dir=str(CONF.parent), version_base=None):
        cfg = hydra.compose(overrides=["+dataset=counterfact", "dataset.split=train"])
    assert cfg.dataset.file == "counterfact_easyedit_mend_format/counterfact-train.json"
    assert load_requests(cfg.dataset, data_dir, num_edits=1)[0].case_id == expect["train_first"]


def test_conceptedit_published_schema_file(tmp_path):
    """A file in ConceptEdit's published schema (final_<model>_<setting>.json, the seven fields EasyEdit's
    run_concept_editing.py reads), at dataset.file relative to the data dir or absolute; the label names it."""
    cfg = dataset("conceptedit", file="conceptedit/final_gpt2_inter.json")
    assert cfg.label == "ConceptEdit (final_gpt2_inter.json)"
    raw = _raw(FIXTURE_DATA, cfg.file)
    assert {tuple(sorted(r)) for r in raw} == {("instance_prompt", "label", "locality_answer", "locality_prompt",
                                                "phrase_prompt", "prompt", "target_new_desc")}
    reqs = load_requests(cfg, FIXTURE_DATA)
    assert [(r.subject, r.prompt) for r in reqs] == [("kettle", "The definition of {} is"),
                                                     ("canoe", "The definition of {} is"),
                                                     ("Saxophone", "The definition of {} is")]
    for r, x in zip(reqs, raw, strict=True):
        assert (r.prompt_text, r.target_new, r.rephrase_prompts) == (x["prompt"], x["target_new_desc"],
                                                                      (x["phrase_prompt"],))
        assert (r.locality_prompts, r.locality_answers) == ((x["locality_prompt"],), (x["locality_answer"],))
        assert r.extra["instance_prompts"] == (x["instance_prompt"],) and r.target_true is None
        assert r.dataset == "conceptedit"
    absolute = dataset("conceptedit", file=str(FIXTURE_DATA / "conceptedit" / "final_gpt2_inter.json"))
    assert load_requests(absolute, tmp_path) == reqs  # an absolute dataset.file ignores the data dir
    # a record missing a published field: one message naming the file, the record and the field
    broken = [dict(raw[0])]
    del broken[0]["target_new_desc"]
    (tmp_path / "final_gpt2_inter.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"final_gpt2_inter.json record 0: field 'target_new_desc'"):
        load_requests(dataset("conceptedit", file="final_gpt2_inter.json"), tmp_path)
