"""Edit-data loaders: turn the benchmark's JSON files into lists of `EditRequest`.

One entry point, `load_requests(dataset_cfg, data_dir, ...)`, reads the file a `editbench/conf/dataset/*.yaml`
names (its keys checked in data/spec.py) and maps each record of one of four schemas onto `EditRequest`
(data/formats.py: EasyEdit and ROME CounterFact, MEND ZsRE, ConceptEdit; methods.md D13, §10.2-§10.4).

A file missing from the data directory may come from the download cache or, with
EDITBENCH_ONLINE=1, be downloaded (data/download.py); with no data directory configured, the
demo set shipped in the package is used (editbench.demo).

Every record that is used is validated (data/raw.py); a malformed one raises one `DataError` that names
the file, the record's index, its case_id where it has one, and the field. JSON is parsed once per call,
but only the selected records are converted, so loading 20 edits from a 10,000-record file is cheap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from editbench.data.download import DATA_ENV, find_data_file
from editbench.data.formats import CONVERTERS, RecordContext
from editbench.data.raw import BadRecord, RecordFields, read_json_list
from editbench.data.records import EditRequest
from editbench.data.rome_sample import RomeSample
from editbench.data.spec import DatasetSpec, dataset_spec
from editbench.demo import demo_dir, is_demo_dir
from editbench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- ROME enrichment


def _rome_sample(spec: DatasetSpec, data_dir: Path) -> RomeSample | None:
    """The enrichment sample if configured and present; its absence only costs ES/PS/NS."""
    # The demo records have case_ids outside CounterFact's, so the sample could never match them.
    if spec.format != "easyedit" or spec.rome_file is None or is_demo_dir(data_dir):
        return None
    if find_data_file(data_dir, spec.rome_file) is None:
        log.warning("dataset.rome_file %s not found under %s: CounterFact records get no neighbourhood "
                    "prompts, so ES/PS/NS cannot be scored", spec.rome_file, data_dir)
        return None
    return RomeSample(data_dir, spec.rome_file)


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
    spec = dataset_spec(dataset_cfg)
    if offset < 0:
        raise ConfigError(f"offset must be >= 0, got {offset}")
    if num_edits is not None and num_edits < 1:
        raise ConfigError(f"num_edits must be >= 1 (or null for all records), got {num_edits}")
    data_dir = Path(data_dir)
    records = read_json_list(data_dir, spec.file)
    rome = _rome_sample(spec, data_dir)
    order = _order(len(records), spec.selection, seed)
    convert = CONVERTERS[spec.format]

    def one(index: int) -> EditRequest:
        try:
            return convert(RecordFields(records[index]), RecordContext(spec, index, rome))
        except BadRecord as err:
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
    spec = dataset_spec({"name": name, "format": format, "file": "in-memory records", "convention": convention})
    convert = CONVERTERS[spec.format]
    requests = []
    for index, raw in enumerate(records):
        try:
            requests.append(convert(RecordFields(raw), RecordContext(spec, index)))
        except BadRecord as err:
            raise DataError(f"{_record_label(spec.file, index, raw)}: {err}") from None
    return requests


class _Invalid(Exception):
    """A record that failed conversion, with its full located message."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def _take_strict(one, order: list[int], spec: DatasetSpec, offset: int, num_edits: int | None) -> list[EditRequest]:
    """Convert exactly the selected records; the first malformed one raises."""
    end = len(order) if num_edits is None else offset + num_edits
    if end > len(order) or offset >= len(order):
        raise DataError(_too_few(spec.file, len(order), offset, num_edits))
    try:
        return [one(index) for index in order[offset:end]]
    except _Invalid as err:
        raise DataError(f"{err}; {_FIX_HINT} (or set dataset.on_bad_record=skip)") from None


def _take_skipping(one, order: list[int], spec: DatasetSpec, offset: int, num_edits: int | None) -> list[EditRequest]:
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
