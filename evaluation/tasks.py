"""The six general-ability tasks as lm-eval task configs (inline dicts, data passed in memory).

Prompts are the published ones, character for character (sources per task below). What we
changed on purpose, and why, is written next to the setting. Reference quirks that we do not
copy (methods.md §10.5): slicing the last 13 characters off summaries, padding every prompt to
``model_max_length``, and the QA loop's un-reset ``flag``.

Data goes to lm-eval through ``custom_dataset`` (a callable returning a ``DatasetDict``), so no
file is written and nothing is resolved against the working directory (stack-notes §4).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation import data, metrics

Doc = dict[str, Any]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    file: str                                  # relative to data_dir
    reader: Callable[[Path], list[Doc]]
    template: str                              # str.format over the document's fields
    source: str                                # where prompt and metric come from
    main_metric: str                           # reported as "score"
    output_type: str                           # generate_until | multiple_choice
    max_gen_toks: int = 0                      # generate_until only
    until: tuple[str, ...] = ()                # generate_until only; lm-eval adds the EOS string itself
    choices: tuple[str, ...] = ()              # multiple_choice only; index = gold label
    metrics: dict[str, str] = field(default_factory=dict)  # metric -> aggregation ("mean" or a name below)

    def render(self, doc: Doc) -> str:
        return self.template.format(**doc)

    @property
    def prompt_hash(self) -> str:
        """Short hash of everything that shapes the model's input and decoding (not the data)."""
        payload = {"template": self.template, "output_type": self.output_type, "max_gen_toks": self.max_gen_toks,
                   "until": list(self.until), "choices": list(self.choices)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


_CLASSIFY_METRICS = {"acc": "ratio", "total_acc": "mean", "parse_fail": "mean", "empty": "mean"}
_LL_METRICS = {"acc": "mean", "f1": "macro_f1", "mcc": "mcc"}
_AGGREGATIONS: dict[str, Callable] = {"ratio": metrics.ratio, "macro_f1": metrics.macro_f1, "mcc": metrics.mcc}

# Classification answers: 3 new tokens, parsed by first word. The USTC code generated 1 token,
# which works for GPT-2 (" True", " positive" are one token there) but not for every vocabulary;
# 3 tokens leave room for a leading space/newline token or a split word. No text stop sequence:
# a "\n" stop would cut a generation that opens with a newline before the answer word.
SPECS: dict[str, TaskSpec] = {
    "rte": TaskSpec(
        name="rte", file="gu2024_general_tasks/test-NLI.tsv", reader=data.read_rte,
        # Gu et al. 2024 (JasonForJoy/Model-Editing-Hurt, test-task-code/test-NLI.py); also PRUNE.
        template="{sentence1} entails the {sentence2}. True or False? answer:",
        source="Gu et al. 2024 / PRUNE (USTC harness), methods.md §10.5",
        main_metric="acc", output_type="generate_until", max_gen_toks=3, until=(),
        choices=("True", "False"), metrics=_CLASSIFY_METRICS,
    ),
    "sst2": TaskSpec(
        name="sst2", file="gu2024_general_tasks/test-SentimentAnalysis.tsv", reader=data.read_sst2,
        # Gu et al. 2024, test-task-code/test-SentimentAnalysis.py (missing spaces are the original's).
        template=("For each snippet of text,label the sentiment of the text as positive or negative."
                  "The answer should be exact 'positive' or 'negative'. text: {sentence} answer:"),
        source="Gu et al. 2024 / PRUNE (USTC harness), methods.md §10.5",
        main_metric="acc", output_type="generate_until", max_gen_toks=3, until=(),
        choices=("positive", "negative"), metrics=_CLASSIFY_METRICS,
    ),
    "nq": TaskSpec(
        name="nq", file="gu2024_general_tasks/test-OpenDomainQA.jsonl", reader=data.read_nq,
        # PRUNE's variant (mjy1111/PRUNE) of Gu et al.'s prompt, which ends with ". Answer:".
        # Gu et al.'s original has no cue word and scored the decoded prompt + output (passage
        # included), so its EM also counted answers copied from the passage in the *prompt*.
        template=("Refer to the passage below and answer the following question. "
                  "Passage: {passage} Question: {question}. Answer:"),
        source="PRUNE (Ma et al. 2025) variant of Gu et al. 2024, methods.md §10.5",
        # Stop where the model starts a new prompt block; not on "\n", since the passages (and so
        # the model's imitation of them) begin with blank lines.
        main_metric="em", output_type="generate_until", max_gen_toks=20, until=("Question:", "Passage:"),
        metrics={"em": "mean", "empty": "mean"},
    ),
    "samsum": TaskSpec(
        name="samsum", file="gu2024_general_tasks/test-summarization.json", reader=data.read_samsum,
        # Gu et al. 2024, test-task-code/test-summarization.py.
        template="{dialogue}\nTL;DR:",
        source="Gu et al. 2024 / PRUNE (USTC harness), methods.md §10.5",
        # A blank line ends the summary (the model then starts a new dialogue or document).
        main_metric="rouge", output_type="generate_until", max_gen_toks=25, until=("\n\n",),
        metrics={"rouge": "mean", "rouge1": "mean", "rouge2": "mean", "rougeL": "mean", "empty": "mean"},
    ),
    "rte_ll": TaskSpec(
        name="rte_ll", file="alphaedit_glue_eval/rte.json", reader=data.read_glue_rte,
        # AlphaEdit / unified-model-editing glue_eval/rte_eval.py, zero-shot. Choice index = GLUE label.
        template="{sentence1}\nquestion: {sentence2} True or False?\nanswer:",
        source="AlphaEdit / Gupta et al. glue_eval (log-likelihood scoring), methods.md §10.6",
        main_metric="acc", output_type="multiple_choice", choices=("True", "False"), metrics=_LL_METRICS,
    ),
    "sst2_ll": TaskSpec(
        name="sst2_ll", file="alphaedit_glue_eval/sst2.json", reader=data.read_glue_sst2,
        # AlphaEdit glue_eval/sst_eval.py, zero-shot ("Review :" + sentence, as in the original).
        template="Review :{sentence}\nSentiment :",
        source="AlphaEdit / Gupta et al. glue_eval (log-likelihood scoring), methods.md §10.6",
        main_metric="acc", output_type="multiple_choice", choices=("negative", "positive"), metrics=_LL_METRICS,
    ),
}


# --- per-document scoring (lm-eval's process_results) ---------------------------------------------


def _classify_results(spec: TaskSpec) -> Callable[[Doc, list[str]], dict]:
    def process_results(doc: Doc, results: list[str]) -> dict:
        generation = results[0]
        pred = metrics.parse_label(generation, spec.choices)
        parsed, correct = pred is not None, pred == doc["label"]
        return {"acc": (float(correct), float(parsed)), "total_acc": float(correct),
                "parse_fail": float(not parsed), "empty": float(not generation.strip())}

    return process_results


def _nq_results(doc: Doc, results: list[str]) -> dict:
    generation = results[0]
    return {"em": float(metrics.lenient_exact_match(generation, doc["answers"])),
            "empty": float(not generation.strip())}


def _samsum_results(doc: Doc, results: list[str]) -> dict:
    generation = results[0]
    scores = metrics.rouge_f(generation, doc["summary"])
    return {"rouge": sum(scores.values()) / len(scores), **scores, "empty": float(not generation.strip())}


def _choice_results(n_tokens: Sequence[int]) -> Callable[[Doc, list], dict]:
    """Argmax of the per-token mean log-likelihood of each choice, as AlphaEdit's glue_eval scores them."""

    def process_results(doc: Doc, results: list) -> dict:
        scores = [ll / n for (ll, _), n in zip(results, n_tokens, strict=True)]
        pred, gold = max(range(len(scores)), key=scores.__getitem__), int(doc["label"])
        return {"acc": float(pred == gold), "f1": (gold, pred), "mcc": (gold, pred)}

    return process_results


def _process_results(spec: TaskSpec, tokenizer: Any) -> Callable:
    if spec.output_type == "multiple_choice":
        # The continuation lm-eval scores is target_delimiter (" ") + choice.
        n_tokens = [max(1, len(tokenizer(" " + c, add_special_tokens=False)["input_ids"])) for c in spec.choices]
        return _choice_results(n_tokens)
    if spec.name == "nq":
        return _nq_results
    if spec.name == "samsum":
        return _samsum_results
    return _classify_results(spec)


# --- the lm-eval config ---------------------------------------------------------------------------


def _no_target(doc: Doc) -> str:
    return ""


def lm_eval_config(spec: TaskSpec, docs: list[Doc], tokenizer: Any) -> dict[str, Any]:
    """An inline lm-eval task dict for ``simple_evaluate(tasks=[...])`` over ``docs``."""

    def dataset(**_ignored: Any):  # lm-eval passes metadata and dataset_kwargs; the docs are already here
        import datasets

        return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})

    config: dict[str, Any] = {
        "task": f"editbench_{spec.name}",
        "custom_dataset": dataset,
        "test_split": "test",
        "output_type": spec.output_type,
        "doc_to_text": spec.render,
        "target_delimiter": " ",
        "process_results": _process_results(spec, tokenizer),
        "metric_list": [
            {"metric": name, "aggregation": _AGGREGATIONS.get(agg, agg), "higher_is_better": name not in ("parse_fail", "empty")}
            for name, agg in spec.metrics.items()
        ],
        "metadata": {"version": 1.0},
    }
    if spec.output_type == "multiple_choice":
        config["doc_to_choice"] = list(spec.choices)
        config["doc_to_target"] = "label"
    else:
        config["doc_to_target"] = _no_target  # scoring is in process_results; lm-eval only logs the target
        # do_sample=False explicitly: instruct models ship sampling generation configs (methods.md §10.5).
        config["generation_kwargs"] = {"until": list(spec.until), "max_gen_toks": spec.max_gen_toks,
                                       "do_sample": False, "temperature": 0.0}
    return config
