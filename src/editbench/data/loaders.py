"""Edit-data loaders: turn the benchmark's JSON files into lists of `EditRequest`.

One entry point, `load_requests(dataset_cfg, data_dir, ...)`, reads the file a `editbench/conf/dataset/*.yaml`
names and maps each record of one of four schemas onto `EditRequest` (methods.md D13, §10.2-§10.4):

- `easyedit`: EasyEdit/MEND CounterFact (`counterfact-{edit,train,val}.json`), optionally enriched
  with the ROME-format sample's paraphrase and neighbourhood prompts (for ES/PS/NS);
- `rome`: ROME CounterFact (`requested_rewrite`, paraphrase and neighbourhood prompts);
- `zsre`: MEND ZsRE (`src`, `alt`, `answers`, ...), read under the `easyedit` or `memit` convention;
- `conceptedit`: the record schema of EasyEdit's concept-editing script.

A file missing from the data directory may come from the download cache or, with
EDITBENCH_ONLINE=1, be downloaded (data/download.py); with no data directory configured, the
demo set shipped in the package is used (editbench.demo).

Every record that is used is validated; a malformed one raises one `DataError` that names the file,
the record's index, its case_id where it has one, and the field. JSON is parsed once per call, but
only the selected records are converted, so loading 20 edits from a 10,000-record file is cheap.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from editbench.data.download import DATA_ENV, data_file, find_data_file
from editbench.data.records import EditRequest
from editbench.demo import demo_dir, is_demo_dir
from editbench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FORMATS = ("easyedit", "rome", "zsre", "conceptedit")
ZSRE_CONVENTIONS = ("easyedit", "memit")
SELECTIONS = ("first", "random")
ON_BAD_RECORD = ("error", "skip")

_FIX_HINT = "fix the record or select other records with offset=/num_edits="
_MAX_SHOWN = 5  # skipped-record indices named in the warning


# --------------------------------------------------------------------------- data directory


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data directory: the `data_dir` config key if given, else $EDITBENCH_DATA, else the demo set.

    No other path is guessed, so a run never silently reads some other copy of the data; the
    demo fallback (`editbench.demo.demo_dir()`, a few dozen edits shipped in the package) is
    announced with a warning. The directory is logged either way.
    """
    source = "data_dir"
    if data_dir is None or str(data_dir) == "":
        data_dir, source = os.environ.get(DATA_ENV) or None, DATA_ENV
    if data_dir is None:
        path = demo_dir()
        log.warning("no data directory configured (data_dir=null, $%s unset): using the demo set shipped with "
                    "editbench in %s (CounterFact-style edits written for smoke runs; its numbers are not "
                    "comparable with published results). For the real data set data_dir=/path/to/data or %s "
                    "(on project machines: ../shared/data).", DATA_ENV, path, DATA_ENV)
        return path
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise DataError(f"data directory {path} (from {source}) {what}; point {source} at the folder "
                        "holding the edit data (on project machines: ../shared/data)")
    log.info("data directory %s (from %s)", path, source)
    return path


# --------------------------------------------------------------------------- dataset config


@dataclass(frozen=True)
class _Spec:
    """The dataset config keys the loader reads, checked once."""

    name: str
    format: str
    file: str
    selection: str
    on_bad_record: str
    convention: str
    rome_file: str | None


def _plain_config(dataset_cfg: Mapping) -> dict:
    """The dataset group as a plain dict with interpolations (e.g. `${.split}`) resolved."""
    if not isinstance(dataset_cfg, Mapping | DictConfig):
        raise ConfigError(f"dataset config must be a mapping, got {type(dataset_cfg).__name__}")
    try:
        node = dataset_cfg if isinstance(dataset_cfg, DictConfig) else OmegaConf.create(dict(dataset_cfg))
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"dataset config cannot be resolved: {err}") from err


def _choice(cfg: dict, key: str, valid: tuple[str, ...], default: str) -> str:
    value = cfg.get(key) or default
    if value not in valid:
        raise ConfigError(f"dataset.{key}={value!r} is not one of: {', '.join(valid)}")
    return value


def _spec(dataset_cfg: Mapping) -> _Spec:
    cfg = _plain_config(dataset_cfg)
    for key in ("name", "format", "file"):
        if not cfg.get(key):
            raise ConfigError(f"dataset config lacks '{key}' (see editbench/conf/dataset/*.yaml for examples)")
    return _Spec(
        name=str(cfg["name"]),
        format=_choice(cfg, "format", FORMATS, ""),
        file=str(cfg["file"]),
        selection=_choice(cfg, "selection", SELECTIONS, "first"),
        on_bad_record=_choice(cfg, "on_bad_record", ON_BAD_RECORD, "error"),
        convention=_choice(cfg, "convention", ZSRE_CONVENTIONS, "easyedit"),
        rome_file=str(cfg["rome_file"]) if cfg.get("rome_file") else None,
    )


# --------------------------------------------------------------------------- reading files


def _read_json_list(data_dir: Path, file: str) -> list:
    """Parse a JSON file whose top level is a list of records."""
    # A file missing from data_dir may come from the download cache or, online, be downloaded.
    path = data_file(data_dir, file, hint="or point dataset.file at the right file")
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text: {err}") from err
    if not isinstance(data, list):
        raise DataError(f"{path}: the top level must be a JSON list of records, got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    """A JSON-ish type name for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), f"a number ({value!r})" if isinstance(value, int | float) else type(value).__name__)


# --------------------------------------------------------------------------- one record


class _BadRecord(Exception):
    """A record's problem, turned into a DataError (or a skip) by the caller who knows the file.

    `where` overrides the record's location when the problem lies in another file (the ROME
    enrichment sample).
    """

    def __init__(self, field: str, problem: str, where: str | None = None):
        super().__init__(f"field '{field}' {problem}" if field else problem)
        self.where = where


class _Fields:
    """Typed, validated access to one raw record; every problem raises `_BadRecord`."""

    def __init__(self, raw: Any):
        if not isinstance(raw, dict):
            raise _BadRecord("", f"is not a JSON object (got {_kind(raw)})")
        self.raw = raw

    def get(self, field: str) -> Any:
        """The value at a dotted path, e.g. 'requested_rewrite.target_new.str'."""
        value: Any = self.raw
        for depth, part in enumerate(field.split(".")):
            if not isinstance(value, dict):
                parent = ".".join(field.split(".")[:depth])
                raise _BadRecord(parent, f"must be an object, got {_kind(value)}")
            if part not in value or value[part] is None:
                raise _BadRecord(field, "is missing")
            value = value[part]
        return value

    def has(self, field: str) -> bool:
        try:
            self.get(field)
        except _BadRecord:
            return False
        return True

    def text(self, field: str) -> str:
        """A required string, stripped at both ends; empty or whitespace-only is an error."""
        return _check_text(self.get(field), field)

    def optional_text(self, field: str) -> str | None:
        return self.text(field) if self.has(field) else None

    def texts(self, field: str) -> tuple[str, ...]:
        """A required non-empty list of non-empty strings."""
        value = self.get(field)
        if not isinstance(value, list):
            raise _BadRecord(field, f"must be a list of strings, got {_kind(value)}")
        if not value:
            raise _BadRecord(field, "is an empty list")
        return tuple(_check_text(item, f"{field}[{i}]") for i, item in enumerate(value))

    def case_id(self) -> str:
        value = self.get("case_id")
        if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
            raise _BadRecord("case_id", f"must be an integer or a non-empty string, got {_kind(value)}")
        return str(value).strip()

    def rest(self, *used: str) -> dict:
        """The record's other top-level fields, kept in `EditRequest.extra`."""
        return {k: v for k, v in self.raw.items() if k not in used}


def _check_text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _BadRecord(field, f"must be a string, got {_kind(value)}")
    if not value.strip():
        raise _BadRecord(field, "is empty")
    return value.strip()


def _subject_template(prompt: str, subject: str, field: str) -> tuple[str, str]:
    """Replace the subject's last occurrence in `prompt` by "{}".

    Returns the template and the subject as written in the prompt: after a case-insensitive
    match the prompt's own spelling is kept, so `prompt_text` reproduces the original prompt.
    """
    if "{}" in prompt:
        raise _BadRecord(field, "already contains '{}', which is reserved for the subject")
    start = prompt.rfind(subject)
    if start < 0:
        matches = list(re.finditer(re.escape(subject), prompt, flags=re.IGNORECASE))
        if not matches:
            raise _BadRecord(field, f"does not contain the subject {subject!r} (prompt: {prompt!r})")
        start = matches[-1].start()
        subject = matches[-1].group(0)
    return prompt[:start] + "{}" + prompt[start + len(subject):], subject


# --------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class _Context:
    """What a converter needs besides the record."""

    spec: _Spec
    index: int
    rome: _RomeSample | None = None


def _from_easyedit(rec: _Fields, ctx: _Context) -> EditRequest:
    """EasyEdit/MEND CounterFact: the subject is filled into `prompt`."""
    case_id, subject = rec.case_id(), rec.text("subject")
    prompt, subject_in_prompt = _subject_template(rec.text("prompt"), subject, "prompt")
    target_new = rec.text("target_new")
    extra = rec.rest("case_id", "prompt", "subject", "target_new", "ground_truth", "rephrase_prompt",
                     "locality_prompt", "locality_ground_truth")
    neighborhood: tuple[str, ...] = ()
    if ctx.rome is not None and case_id in ctx.rome.by_case:
        neighborhood, rome_extra = ctx.rome.enrichment(case_id, subject, target_new)
        extra.update(rome_extra)
    return EditRequest(
        case_id=case_id,
        prompt=prompt,
        subject=_note_case(subject_in_prompt, subject, extra),
        target_new=target_new,
        target_true=rec.text("ground_truth"),
        rephrase_prompts=(rec.text("rephrase_prompt"),),
        locality_prompts=(rec.text("locality_prompt"),),
        locality_answers=(rec.text("locality_ground_truth"),),
        neighborhood_prompts=neighborhood,
        dataset=ctx.spec.name,
        extra=extra,
    )


def _from_rome(rec: _Fields, ctx: _Context) -> EditRequest:
    """ROME CounterFact: neighbourhood prompts share the true object, so they double as locality."""
    prompt = rec.text("requested_rewrite.prompt")
    if prompt.count("{}") != 1:
        raise _BadRecord("requested_rewrite.prompt", f"must contain '{{}}' exactly once (prompt: {prompt!r})")
    target_true = rec.text("requested_rewrite.target_true.str")
    neighborhood = rec.texts("neighborhood_prompts")
    paraphrases = rec.texts("paraphrase_prompts")
    extra = rec.rest("case_id", "requested_rewrite", "paraphrase_prompts", "neighborhood_prompts")
    extra.update(_rome_ids(rec), paraphrase_prompts=paraphrases)
    return EditRequest(
        case_id=rec.case_id(),
        prompt=prompt,
        subject=rec.text("requested_rewrite.subject"),
        target_new=rec.text("requested_rewrite.target_new.str"),
        target_true=target_true,
        rephrase_prompts=paraphrases,
        locality_prompts=neighborhood,
        locality_answers=(target_true,) * len(neighborhood),
        neighborhood_prompts=neighborhood,
        dataset=ctx.spec.name,
        extra=extra,
    )


def _rome_ids(rec: _Fields) -> dict:
    """Relation and Wikidata ids of a ROME record, where present."""
    rewrite = rec.raw.get("requested_rewrite", {})
    ids = {"relation_id": rewrite.get("relation_id"),
           "target_new_id": (rewrite.get("target_new") or {}).get("id"),
           "target_true_id": (rewrite.get("target_true") or {}).get("id")}
    return {k: v for k, v in ids.items() if v is not None}


def _from_zsre(rec: _Fields, ctx: _Context) -> EditRequest:
    """MEND ZsRE under one of two conventions (methods.md §10.3, D11).

    easyedit: target_new = `alt`, target_true = `answers[0]`; locality is agreement with the
    pre-edit model on `loc` + `loc_ans`.
    memit: target_new = `answers[0]` (the true answer); locality is accuracy against the NQ gold
    `loc_ans`, on `loc` + "?" as MEMIT's MENDQADataset builds it. There is no meaningful true
    target (MEMIT uses "<|endoftext|>"), so target_true is None.
    """
    subject = rec.text("subject")
    prompt, subject_in_prompt = _subject_template(rec.text("src"), subject, "src")
    if ctx.spec.convention == "easyedit":
        target_new, target_true = rec.text("alt"), rec.texts("answers")[0]
        locality_prompt = rec.text("loc")
    else:
        target_new, target_true = rec.texts("answers")[0], None
        locality_prompt = rec.text("loc") + "?"
    extra = rec.rest("subject", "src", "rephrase", "loc", "loc_ans")
    extra["convention"] = ctx.spec.convention
    return EditRequest(
        case_id=str(ctx.index),
        prompt=prompt,
        subject=_note_case(subject_in_prompt, subject, extra),
        target_new=target_new,
        target_true=target_true,
        rephrase_prompts=(rec.text("rephrase"),),
        locality_prompts=(locality_prompt,),
        locality_answers=(rec.text("loc_ans"),),
        dataset=ctx.spec.name,
        extra=extra,
    )


def _from_conceptedit(rec: _Fields, ctx: _Context) -> EditRequest:
    """ConceptEdit schema: the concept name (`label`) is the subject, its new definition the target."""
    subject = rec.text("label")
    prompt, subject_in_prompt = _subject_template(rec.text("prompt"), subject, "prompt")
    instance_prompts = tuple(p for p in (rec.text("instance_prompt"), rec.optional_text("instance_prompt_2")) if p)
    extra = rec.rest("prompt", "phrase_prompt", "target_new_desc", "locality_prompt", "locality_answer",
                     "label", "ground_truth_desc", "instance_prompt", "instance_prompt_2")
    extra["instance_prompts"] = instance_prompts
    return EditRequest(
        case_id=str(ctx.index),
        prompt=prompt,
        subject=_note_case(subject_in_prompt, subject, extra),
        target_new=rec.text("target_new_desc"),
        target_true=rec.optional_text("ground_truth_desc"),
        rephrase_prompts=(rec.text("phrase_prompt"),),
        locality_prompts=(rec.text("locality_prompt"),),
        locality_answers=(rec.text("locality_answer"),),
        dataset=ctx.spec.name,
        extra=extra,
    )


def _note_case(subject_in_prompt: str, subject: str, extra: dict) -> str:
    """Keep the record's own subject spelling in `extra` when the prompt spells it differently."""
    if subject_in_prompt != subject:
        extra["subject_as_recorded"] = subject
    return subject_in_prompt


_CONVERTERS: dict[str, Callable[[_Fields, _Context], EditRequest]] = {
    "easyedit": _from_easyedit,
    "rome": _from_rome,
    "zsre": _from_zsre,
    "conceptedit": _from_conceptedit,
}


# --------------------------------------------------------------------------- ROME enrichment


class _RomeSample:
    """The ROME-format CounterFact sample, indexed by case_id, for enriching EasyEdit records.

    The EasyEdit files carry one paraphrase and one neighbourhood prompt per case; the ROME
    sample has the 2 paraphrases and 10 neighbourhood prompts that ES/PS/NS need.
    """

    def __init__(self, data_dir: Path, file: str):
        self.file = file
        self.records = _read_json_list(data_dir, file)
        self.by_case: dict[str, int] = {}
        for index, raw in enumerate(self.records):
            try:
                self.by_case[_Fields(raw).case_id()] = index
            except _BadRecord as err:
                raise DataError(f"{file} record {index}: {err}; fix the record or set dataset.rome_file=null") from err

    def enrichment(self, case_id: str, subject: str, target_new: str) -> tuple[tuple[str, ...], dict]:
        """Neighbourhood prompts and extra fields for one case, checked against the EasyEdit record."""
        index = self.by_case[case_id]
        where = f"{self.file} record {index} (case_id {case_id})"
        rec = _Fields(self.records[index])
        try:
            for field, expected in (("requested_rewrite.subject", subject),
                                    ("requested_rewrite.target_new.str", target_new)):
                if rec.text(field) != expected:
                    raise _BadRecord(field, f"is {rec.text(field)!r} but the edit record says {expected!r}")
            extra = {"paraphrase_prompts": rec.texts("paraphrase_prompts"), **_rome_ids(rec)}
            for key in ("attribute_prompts", "generation_prompts"):
                if key in rec.raw:
                    extra[key] = rec.raw[key]
            return rec.texts("neighborhood_prompts"), extra
        except _BadRecord as err:
            raise _BadRecord("", str(err), where=where) from err


def _rome_sample(spec: _Spec, data_dir: Path) -> _RomeSample | None:
    """The enrichment sample if configured and present; its absence only costs ES/PS/NS."""
    # The demo records have case_ids outside CounterFact's, so the sample could never match them.
    if spec.format != "easyedit" or spec.rome_file is None or is_demo_dir(data_dir):
        return None
    if find_data_file(data_dir, spec.rome_file) is None:
        log.warning("dataset.rome_file %s not found under %s: CounterFact records get no neighbourhood "
                    "prompts, so ES/PS/NS cannot be scored", spec.rome_file, data_dir)
        return None
    return _RomeSample(data_dir, spec.rome_file)


# --------------------------------------------------------------------------- selection


def _order(n: int, selection: str, seed: int) -> list[int]:
    """File positions in the order records are taken: file order, or a seeded permutation."""
    if selection == "first":
        return list(range(n))
    return [int(i) for i in np.random.default_rng(seed).permutation(n)]


def _record_label(file: str, index: int, raw: Any) -> str:
    case_id = raw.get("case_id") if isinstance(raw, dict) else None
    return f"{file} record {index}" + (f" (case_id {case_id})" if case_id is not None else "")


def load_requests(
    dataset_cfg: Mapping,
    data_dir: Path,
    *,
    num_edits: int | None = None,
    offset: int = 0,
    seed: int = 0,
) -> list[EditRequest]:
    """Load `num_edits` edit requests (all if None), starting `offset` records into the selection order.

    `dataset_cfg` is the Hydra `dataset` group (DictConfig or dict); `data_dir` comes from
    `resolve_data_dir`. The result depends only on the arguments and the file, so a sequential
    stream can be cut into chunks with offset/num_edits. With `on_bad_record: skip`, malformed
    records are dropped (and reported) and `offset` counts valid records, so chunks still tile.
    """
    spec = _spec(dataset_cfg)
    if offset < 0:
        raise ConfigError(f"offset must be >= 0, got {offset}")
    if num_edits is not None and num_edits < 1:
        raise ConfigError(f"num_edits must be >= 1 (or null for all records), got {num_edits}")
    data_dir = Path(data_dir)
    records = _read_json_list(data_dir, spec.file)
    rome = _rome_sample(spec, data_dir)
    order = _order(len(records), spec.selection, seed)
    convert = _CONVERTERS[spec.format]

    def one(index: int) -> EditRequest:
        try:
            return convert(_Fields(records[index]), _Context(spec, index, rome))
        except _BadRecord as err:
            where = err.where or _record_label(spec.file, index, records[index])
            raise _Invalid(index, f"{where}: {err}") from err

    take = _take_skipping if spec.on_bad_record == "skip" else _take_strict
    try:
        requests = take(one, order, spec, offset, num_edits)
    except DataError as err:
        if is_demo_dir(data_dir):  # most likely num_edits beyond the demo's size
            raise DataError(f"{err} (This is the demo set shipped with editbench, {len(records)} records; "
                            f"set data_dir=/path/to/data or {DATA_ENV} for the full data.)") from None
        raise
    _log_case_fallbacks(requests, spec.file)
    return requests


def requests_from_records(records: list, *, format: str = "easyedit", name: str = "records",
                          convention: str = "easyedit") -> list[EditRequest]:
    """Convert in-memory records (e.g. dicts in EasyEdit's CounterFact schema) as `load_requests`
    converts a file's, with the same validation; for the Python API."""
    spec = _spec({"name": name, "format": format, "file": "in-memory records", "convention": convention})
    convert = _CONVERTERS[spec.format]
    requests = []
    for index, raw in enumerate(records):
        try:
            requests.append(convert(_Fields(raw), _Context(spec, index)))
        except _BadRecord as err:
            raise DataError(f"{_record_label(spec.file, index, raw)}: {err}") from None
    return requests


class _Invalid(Exception):
    """A record that failed conversion, with its full located message."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def _take_strict(one, order: list[int], spec: _Spec, offset: int, num_edits: int | None) -> list[EditRequest]:
    """Convert exactly the selected records; the first malformed one raises."""
    end = len(order) if num_edits is None else offset + num_edits
    if end > len(order) or offset >= len(order):
        raise DataError(_too_few(spec.file, len(order), offset, num_edits))
    try:
        return [one(index) for index in order[offset:end]]
    except _Invalid as err:
        raise DataError(f"{err}; {_FIX_HINT} (or set dataset.on_bad_record=skip)") from None


def _take_skipping(one, order: list[int], spec: _Spec, offset: int, num_edits: int | None) -> list[EditRequest]:
    """Walk the selection order, dropping malformed records, until enough valid ones are found."""
    end = None if num_edits is None else offset + num_edits
    good: list[EditRequest] = []
    bad: list[_Invalid] = []
    for index in order:
        if end is not None and len(good) == end:
            break
        try:
            good.append(one(index))
        except _Invalid as err:
            bad.append(err)
    if bad:
        shown = ", ".join(str(b.index) for b in bad[:_MAX_SHOWN]) + (", ..." if len(bad) > _MAX_SHOWN else "")
        log.warning("%s: skipped %d malformed record(s) (dataset.on_bad_record=skip), file indices %s; first: %s",
                    spec.file, len(bad), shown, bad[0])
    if (end is not None and len(good) < end) or offset >= len(good):
        raise DataError(_too_few(spec.file, len(good), offset, num_edits, skipped=len(bad)))
    return good[offset:]


def _too_few(file: str, available: int, offset: int, num_edits: int | None, skipped: int = 0) -> str:
    valid = f"{available} valid records ({skipped} malformed ones skipped)" if skipped else f"{available} records"
    asked = "all records" if num_edits is None else f"num_edits={num_edits}"
    return (f"{file} has {valid}; {asked} from offset={offset} asks for more than exist "
            f"({max(available - offset, 0)} available from that offset). Lower num_edits or offset.")


def _log_case_fallbacks(requests: list[EditRequest], file: str) -> None:
    n = sum("subject_as_recorded" in r.extra for r in requests)
    if n:
        log.info("%s: %d record(s) matched the subject in the prompt only case-insensitively", file, n)
