"""Raw edit records: a data file's JSON list, and typed, validated access to one record.

Every problem with a record raises `BadRecord` naming the field; the loader (data/loaders.py),
which knows the file and the record's index, turns it into one `DataError` (or a skip).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from editbench.data.download import data_file
from editbench.errors import DataError


def read_json_list(data_dir: Path, file: str) -> list:
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
        raise DataError(f"{path}: the top level must be a JSON list of records, got {json_kind(data)}")
    return data


def json_kind(value: Any) -> str:
    """A JSON-ish type name for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), f"a number ({value!r})" if isinstance(value, int | float) else type(value).__name__)


class BadRecord(Exception):
    """A record's problem, turned into a DataError (or a skip) by the caller who knows the file.

    `where` overrides the record's location when the problem lies in another file (the ROME
    enrichment sample).
    """

    def __init__(self, field: str, problem: str, where: str | None = None):
        super().__init__(f"field '{field}' {problem}" if field else problem)
        self.where = where


class RecordFields:
    """Typed, validated access to one raw record; every problem raises `BadRecord`."""

    def __init__(self, raw: Any):
        if not isinstance(raw, dict):
            raise BadRecord("", f"is not a JSON object (got {json_kind(raw)})")
        self.raw = raw

    def get(self, field: str) -> Any:
        """The value at a dotted path, e.g. 'requested_rewrite.target_new.str'."""
        value: Any = self.raw
        for depth, part in enumerate(field.split(".")):
            if not isinstance(value, dict):
                parent = ".".join(field.split(".")[:depth])
                raise BadRecord(parent, f"must be an object, got {json_kind(value)}")
            if part not in value or value[part] is None:
                raise BadRecord(field, "is missing")
            value = value[part]
        return value

    def has(self, field: str) -> bool:
        try:
            self.get(field)
        except BadRecord:
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
            raise BadRecord(field, f"must be a list of strings, got {json_kind(value)}")
        if not value:
            raise BadRecord(field, "is an empty list")
        return tuple(_check_text(item, f"{field}[{i}]") for i, item in enumerate(value))

    def case_id(self) -> str:
        value = self.get("case_id")
        if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
            raise BadRecord("case_id", f"must be an integer or a non-empty string, got {json_kind(value)}")
        return str(value).strip()

    def rest(self, *used: str) -> dict:
        """The record's other top-level fields, kept in `EditRequest.extra`."""
        return {k: v for k, v in self.raw.items() if k not in used}


def _check_text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise BadRecord(field, f"must be a string, got {json_kind(value)}")
    if not value.strip():
        raise BadRecord(field, "is empty")
    return value.strip()
