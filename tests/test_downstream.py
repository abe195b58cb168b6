"""General-ability tasks: metrics on hand-made predictions, readers on the real files, the lm-eval
plumbing on a scripted LM (exact aggregates), and every task end to end on a tiny random model."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from lm_eval.api.model import LM
from omegaconf import OmegaConf
from rouge_score import rouge_scorer

from editbench.config import CONF_DIR
from editbench.errors import ConfigError, DataError
from evaluation import data, metrics
from evaluation.downstream import TASKS, _run, evaluate_downstream, retention
from evaluation.tasks import SPECS, lm_eval_config

CONF = CONF_DIR / "downstream"

# --------------------------------------------------------------------------- lenient exact match


def test_normalize_answer_is_squad_normalisation():
    assert metrics.normalize_answer("  The Eiffel-Tower, (Paris)!  ") == "eiffeltower paris"
    assert metrics.normalize_answer("An apple a day") == "apple day"


@pytest.mark.parametrize(("prediction", "answers", "hit"), [
    ("The Eiffel Tower.", ["eiffel tower"], True),                 # articles, punctuation, case
    ("Paris is the capital of France", ["Paris"], True),            # first word
    ("the capital of France is PARIS.", ["paris"], True),           # last word
    ("I think Wilhelm Conrad Röntgen won it", ["Wilhelm Conrad Röntgen"], True),  # inner span
    ("it opened on May 18, 2018 in cinemas", ["May 18 , 2018"], True),             # NQ-style gold spacing
    ("Wilhelm Röntgen", ["Wilhelm Conrad Röntgen"], False),         # words missing from the gold span
    ("Parisian food", ["Paris"], False),                            # a word prefix is not a word
    ("no idea", ["Olivia", "MFSK"], False),                         # no match
    ("they use MFSK mostly", ["Olivia", "MFSK"], True),             # any of several golds
    ("", ["Paris"], False),                                         # empty generation
    ("the answer", ["The"], False),                                 # gold normalising to "" never matches
])
def test_lenient_exact_match(prediction, answers, hit):
    assert metrics.lenient_exact_match(prediction, answers) is hit


# --------------------------------------------------------------------------- answer parsing


@pytest.mark.parametrize(("generation", "labels", "parsed"), [
    (" True.", ("True", "False"), "True"),
    ("\nfalse and", ("True", "False"), "False"),
    (" 'positive'", ("positive", "negative"), "positive"),
    (" Negative .", ("positive", "negative"), "negative"),
    (" The answer is True", ("True", "False"), None),   # first word only
    (" truly", ("True", "False"), None),
    ("", ("positive", "negative"), None),
    (" . positive", ("positive", "negative"), "positive"),  # a lone punctuation token is skipped
])
def test_parse_label(generation, labels, parsed):
    assert metrics.parse_label(generation, labels) == parsed


def _aggregate(spec_name: str, docs: list[dict], outputs: list) -> dict[str, float]:
    """process_results + the task's aggregations, as lm-eval applies them."""
    spec = SPECS[spec_name]
    config = lm_eval_config(spec, docs, tokenizer=lambda text, **_: {"input_ids": [0]})
    per_doc = [config["process_results"](d, o) for d, o in zip(docs, outputs, strict=True)]
    aggregations = {m["metric"]: m["aggregation"] for m in config["metric_list"]}
    out = {}
    for name, agg in aggregations.items():
        items = [r[name] for r in per_doc]
        out[name] = sum(items) / len(items) if agg == "mean" else agg(items)
    return out


def test_classification_scores_count_unparsable_answers_separately():
    docs = [{"sentence": "a", "label": "positive"}, {"sentence": "b", "label": "negative"},
            {"sentence": "c", "label": "negative"}, {"sentence": "d", "label": "positive"}]
    outputs = [[" positive"], [" positive ."], [" I think"], [""]]
    scores = _aggregate("sst2", docs, outputs)
    assert scores["acc"] == pytest.approx(1 / 2)           # correct / parsed
    assert scores["total_acc"] == pytest.approx(1 / 4)     # unparsable counted wrong
    assert scores["parse_fail"] == pytest.approx(2 / 4)
    assert scores["empty"] == pytest.approx(1 / 4)


def test_classification_acc_is_nan_when_nothing_parses():
    docs = [{"sentence1": "a", "sentence2": "b", "label": "True"}]
    scores = _aggregate("rte", docs, [[" The"]])
    assert math.isnan(scores["acc"]) and scores["total_acc"] == 0.0 and scores["parse_fail"] == 1.0


def test_choice_scoring_normalises_by_token_count():
    # Choice 0 has 1 token, choice 1 has 2: -2.0/1 < -3.0/2, so choice 1 wins despite the lower sum.
    process = lm_eval_config(SPECS["sst2_ll"], [], tokenizer=lambda text, **_: {"input_ids": [0] * (1 + ("pos" in text))})
    out = process["process_results"]({"sentence": "x", "label": 1}, [(-2.0, False), (-3.0, False)])
    assert out["acc"] == 1.0 and out["f1"] == (1, 1)


def test_macro_f1_and_mcc_by_hand():
    pairs = [(1, 1), (1, 0), (0, 0), (0, 0)]
    assert metrics.macro_f1(pairs) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert metrics.mcc(pairs) == pytest.approx(2 / math.sqrt(12))
    assert metrics.mcc([(0, 1), (1, 0)]) == pytest.approx(-1.0)
    assert metrics.mcc([(0, 0), (1, 0)]) == 0.0  # constant prediction: undefined, reported as 0


# --------------------------------------------------------------------------- ROUGE


def test_rouge_identical_strings_score_one():
    assert metrics.rouge_f("Amanda baked cookies.", "Amanda baked cookies.") == pytest.approx(
        {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})


@pytest.mark.parametrize(("prediction", "reference"), [
    ("the cat sat", "the cat sat on the mat"),
    ("Jerry will bring the cake to Anna's party on Friday.", "Anna is having a party on Friday; Jerry brings cake."),
])
def test_rouge_agrees_with_rouge_score(prediction, reference):
    direct = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(reference, prediction)
    ours = metrics.rouge_f(prediction, reference)
    assert ours == pytest.approx({k: v.fmeasure for k, v in direct.items()})
    if prediction == "the cat sat":
        assert ours["rouge1"] == pytest.approx(2 / 3)  # P = 1, R = 1/2


def test_samsum_score_is_the_mean_of_rouge_1_2_l():
    docs = [{"dialogue": "A: hi", "summary": "the cat sat on the mat"}]
    scores = _aggregate("samsum", docs, [["the cat sat"]])
    assert scores["rouge"] == pytest.approx((scores["rouge1"] + scores["rouge2"] + scores["rougeL"]) / 3)


# --------------------------------------------------------------------------- retention


def test_retention():
    now = {"rte": {"score": 0.45}, "nq": {"score": 0.2}, "sst2": {"score": float("nan")}, "samsum": {"score": 0.1}}
    before = {"rte": {"score": 0.5}, "nq": {"score": 0.0}, "sst2": {"score": 0.9}}
    r = retention(now, before)
    assert r["rte"] == pytest.approx(0.9)
    assert math.isnan(r["nq"]) and math.isnan(r["sst2"])
    assert "samsum" not in r
    assert retention({"rte": 0.3}, {"rte": 0.6}) == {"rte": pytest.approx(0.5)}
    assert math.isnan(retention({"rte": {"score": None}}, {"rte": {"score": 0.5}})["rte"])


# --------------------------------------------------------------------------- data files and prompts


@pytest.mark.parametrize(("task", "count"), [("rte", 2489), ("sst2", 872), ("nq", 3610), ("samsum", 818),
                                             ("rte_ll", 262), ("sst2_ll", 856)])
@pytest.mark.full_data("the real general-ability files (gu2024_general_tasks/, alphaedit_glue_eval/): their row counts")
def test_readers_on_the_real_files(shared_data, task, count):
    spec = SPECS[task]
    docs, sha = data.load_docs(spec.reader, shared_data / spec.file, None)
    assert len(docs) == count and len(sha) == 16
    assert len(data.load_docs(spec.reader, shared_data / spec.file, 5)[0]) == 5


@pytest.mark.full_data("the first records of the real RTE, GLUE-RTE and NQ files")
def test_label_mappings_and_prompts(shared_data):
    rte, _ = data.load_docs(data.read_rte, shared_data / SPECS["rte"].file, 1)
    assert rte[0]["label"] == "False"  # "No Weapons of Mass Destruction Found..." is not_entailment
    assert SPECS["rte"].render(rte[0]) == ("No Weapons of Mass Destruction Found in Iraq Yet. entails the "
                                           "Weapons of Mass Destruction Found in Iraq.. True or False? answer:")
    glue_rte, _ = data.load_docs(data.read_glue_rte, shared_data / SPECS["rte_ll"].file, 1)
    # GLUE label 1 = not_entailment ("...living in exile since 10,000") -> choice index 1 = "False"
    assert glue_rte[0]["label"] == 1 and SPECS["rte_ll"].choices[1] == "False"
    nq, _ = data.load_docs(data.read_nq, shared_data / SPECS["nq"].file, 1)
    assert SPECS["nq"].render(nq[0]).endswith("Question: who got the first nobel prize in physics?. Answer:")
    assert nq[0]["answers"] == ["Wilhelm Conrad Röntgen"]
    hashes = {s.prompt_hash for s in SPECS.values()}
    assert len(hashes) == len(SPECS) and all(len(h) == 12 for h in hashes)


def test_errors_name_the_fix(tmp_path):
    # All raised before the model is used, so no model is needed.
    class Tok:
        chat_template = None

    def call(tasks, n=4, **kw):
        return evaluate_downstream(None, Tok(), tmp_path, tasks, n, **kw)

    with pytest.raises(ConfigError, match="valid tasks are .*'rte'.*'sst2_ll'"):
        call(["mmlu"])
    with pytest.raises(DataError, match="test-NLI.tsv.*EDITBENCH_DATA"):
        call(["rte"])
    with pytest.raises(ConfigError, match="n_examples"):
        call(["rte"], 0)
    with pytest.raises(ConfigError, match="chat template"):
        call(["rte"], chat_template=True)
    assert call([]) == {}


def test_hydra_groups():
    for name in ("none", "usual", "glue"):
        cfg = OmegaConf.load(CONF / f"{name}.yaml")
        assert {"tasks", "n_examples", "every_k_steps", "batch_size", "chat_template"} <= set(cfg)
        assert set(cfg.tasks) <= set(TASKS)
    assert list(OmegaConf.load(CONF / "none.yaml").tasks) == []


# --------------------------------------------------------------------------- through lm-eval


class ScriptedLM(LM):
    """Returns fixed generations / log-likelihoods, so lm-eval's aggregates can be checked exactly."""

    def __init__(self, generations: list[str], lls: list[float] | None = None):
        super().__init__()
        self.generations, self.lls, self.gen_kwargs = generations, lls or [], []

    def generate_until(self, requests):
        self.gen_kwargs += [r.args[1] for r in requests]
        # requests arrive in document order for a single task; map by doc index to be safe
        return [self.generations[r.doc_id] for r in requests]

    def loglikelihood(self, requests):
        return [(self.lls[2 * r.doc_id + r.idx], False) for r in requests]

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


def test_lm_eval_aggregates_match_hand_counts():
    docs = [{"sentence1": "a", "sentence2": "b", "label": lab} for lab in ("True", "False", "True", "False", "True")]
    lm = ScriptedLM([" True.", " True", " maybe", " False", "\nTRUE"])
    out = _run(lm, lm_eval_config(SPECS["rte"], docs, tokenizer=None), seed=0, chat_template=False)
    res = out["results"]["editbench_rte"]
    assert res["acc,none"] == pytest.approx(3 / 4)        # 3 right of 4 parsed
    assert res["total_acc,none"] == pytest.approx(3 / 5)
    assert res["parse_fail,none"] == pytest.approx(1 / 5)
    assert lm.gen_kwargs[0]["do_sample"] is False and lm.gen_kwargs[0]["max_gen_toks"] == 3


def test_lm_eval_multiple_choice_through_scripted_lm():
    docs = [{"sentence": "x", "label": 1}, {"sentence": "y", "label": 0}, {"sentence": "z", "label": 0}]
    lls = [-1.0, -0.5, -0.2, -3.0, -2.0, -0.1]  # (choice 0, choice 1) per doc: predictions 1, 0, 1
    config = lm_eval_config(SPECS["sst2_ll"], docs, tokenizer=lambda text, **_: {"input_ids": [0]})
    res = _run(ScriptedLM([], lls), config, seed=0, chat_template=False)["results"]["editbench_sst2_ll"]
    assert res["acc,none"] == pytest.approx(2 / 3)
    assert res["f1,none"] == pytest.approx(metrics.macro_f1([(1, 1), (0, 0), (0, 1)]))


def test_every_task_end_to_end_on_a_tiny_model(tiny, data_dir):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    tiny.model.train()  # lm-eval's HFLM calls .eval(); the caller's mode must come back
    try:
        res = evaluate_downstream(tiny.model, tiny.tokenizer, data_dir, TASKS, 2, batch_size=2, max_length=192)
        assert tiny.model.training
    finally:
        tiny.model.eval()
    # the evaluation seeds lm-eval, but must leave the caller's random streams where they were
    after = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    assert after == (random.random(), np.random.rand(), torch.rand(1).item())

    assert list(res) == list(TASKS)
    for task, r in res.items():
        assert r["n"] == 2 and r["seconds"] > 0 and r["prompt_hash"] == SPECS[task].prompt_hash
        assert math.isnan(r["score"]) or 0.0 <= r["score"] <= 1.0
        assert 0.0 <= r["truncated"] <= 1.0
    assert {"acc", "total_acc", "parse_fail"} <= set(res["rte"]) and {"rouge1", "rouge2", "rougeL"} <= set(res["samsum"])
    assert {"acc", "f1", "mcc"} <= set(res["sst2_ll"]) and "em" in res["nq"]


def test_pre_edit_cache_returns_the_stored_result_only_for_the_same_key(tiny, data_dir, tmp_path):
    def evaluate(n, weights="w0"):
        return evaluate_downstream(tiny.model, tiny.tokenizer, data_dir, ["rte", "sst2_ll"], n, batch_size=2,
                                   max_length=192, cache=(weights, tmp_path))

    first = evaluate(2)
    assert not any(r.get("cached") for r in first.values()) and len(list(tmp_path.glob("*.json"))) == 2
    again = evaluate(2)
    assert all(r["cached"] for r in again.values())
    for task in first:  # NaN (no parsed RTE answer) survives the round trip as NaN
        assert {k: v for k, v in again[task].items() if k != "cached"} == pytest.approx(first[task], nan_ok=True)
    assert not any(r.get("cached") for r in evaluate(3).values())            # other subset
    assert not any(r.get("cached") for r in evaluate(2, weights="w1").values())  # other weights
