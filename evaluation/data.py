"""Readers for the local general-ability files (data/SOURCES.md §4, §4b).

Each reader returns a list of plain dicts with the fields the prompts use, in file order. Files
are parsed once per process (keyed by path, size and mtime) because the runner evaluates every
k steps; the content hash goes into every result so a changed file is visible in the logs.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from editbench.errors import DataError

Doc = dict[str, object]


def _tsv_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    # QUOTE_NONE: sentences contain stray double quotes that must not start a quoted field.
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or tuple(header[: len(columns)]) != columns:
            raise DataError(f"{path}: expected a TSV header {list(columns)}, got {header}")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise DataError(f"{path}, line {line_no}: expected {len(header)} tab-separated fields, got {len(row)}")
            rows.append(dict(zip(header, row, strict=True)))
    return rows


def _check(path: Path, i: int, value: object, allowed: tuple, field: str) -> None:
    if value not in allowed:
        raise DataError(f"{path}, record {i}: {field}={value!r}, expected one of {list(allowed)}")


def read_rte(path: Path) -> list[Doc]:
    """test-NLI.tsv (GLUE RTE train rows): premise, hypothesis, label "True"/"False"."""
    docs = []
    for i, row in enumerate(_tsv_rows(path, ("index", "sentence1", "sentence2", "label"))):
        _check(path, i, row["label"], ("entailment", "not_entailment"), "label")
        docs.append({"sentence1": row["sentence1"], "sentence2": row["sentence2"],
                     "label": "True" if row["label"] == "entailment" else "False"})
    return docs


def read_sst2(path: Path) -> list[Doc]:
    """test-SentimentAnalysis.tsv (SST-2 dev): sentence, label "positive"/"negative"."""
    docs = []
    for i, row in enumerate(_tsv_rows(path, ("sentence", "label"))):
        _check(path, i, row["label"], ("0", "1"), "label")
        docs.append({"sentence": row["sentence"], "label": "positive" if row["label"] == "1" else "negative"})
    return docs


def read_nq(path: Path) -> list[Doc]:
    """test-OpenDomainQA.jsonl (NQ-open test): question, passage (= output[0]), answers."""
    docs = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                question, answers, passage = rec["question"], list(rec["answer"]), rec["output"][0]
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise DataError(f"{path}, line {i + 1}: expected {{question, answer[list], output[list]}}: {e!r}") from e
            docs.append({"question": question, "passage": passage, "answers": answers})
    return docs


def read_samsum(path: Path) -> list[Doc]:
    """test-summarization.json (SAMSum test): dialogue, summary."""
    records = _json_list(path)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not {"dialogue", "summary"} <= rec.keys():
            raise DataError(f"{path}, record {i}: expected {{id, summary, dialogue}}")
    return [{"dialogue": r["dialogue"], "summary": r["summary"]} for r in records]


def read_glue_rte(path: Path) -> list[Doc]:
    """alphaedit_glue_eval/rte.json: GLUE labels, 0 = entailment, 1 = not_entailment.

    (AlphaEdit's glue_eval/rte_eval.py maps label 1 to "True", i.e. reads these labels inverted;
    we keep GLUE's meaning, checked on the records themselves.)
    """
    records = _json_list(path)
    for i, rec in enumerate(records):
        _check(path, i, rec.get("label") if isinstance(rec, dict) else None, (0, 1), "label")
    return [{"sentence1": r["sentence1"], "sentence2": r["sentence2"], "label": r["label"]} for r in records]


def read_glue_sst2(path: Path) -> list[Doc]:
    """alphaedit_glue_eval/sst2.json: 0 = negative, 1 = positive."""
    records = _json_list(path)
    for i, rec in enumerate(records):
        _check(path, i, rec.get("label") if isinstance(rec, dict) else None, (0, 1), "label")
    return [{"sentence": r["sentence"], "label": r["label"]} for r in records]


def _json_list(path: Path) -> list:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records")
    return records


@lru_cache(maxsize=32)
def _read_cached(reader: Callable[[Path], list[Doc]], path: Path, size: int, mtime_ns: int) -> tuple[list[Doc], str]:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return reader(path), sha


def load_docs(reader: Callable[[Path], list[Doc]], path: Path, n_examples: int | None) -> tuple[list[Doc], str]:
    """The first ``n_examples`` documents in file order (all when None) and the file's content hash.

    First-N rather than a seeded sample: it is what PRUNE (first 299/261/149) and AlphaEdit
    (first 100 of pre-shuffled, class-balanced sets) did, it keeps the subset identical across
    seeds, and the first 100 RTE / SST-2 rows are close to balanced (51/49, 52/48).
    """
    if not path.is_file():
        raise DataError(
            f"general-ability data file not found: {path}. Set data_dir (or the EDITBENCH_DATA environment "
            "variable) to the folder holding gu2024_general_tasks/ and alphaedit_glue_eval/ (see data/SOURCES.md §4)."
        )
    stat = path.stat()
    docs, sha = _read_cached(reader, path.resolve(), stat.st_size, stat.st_mtime_ns)
    return [dict(d) for d in docs[:n_examples]], sha
