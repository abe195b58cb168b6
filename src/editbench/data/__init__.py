"""Edit requests and the loaders that read them from the data directory (methods.md D13)."""

from editbench.data.download import DATA_ENV
from editbench.data.loaders import load_requests, requests_from_records, resolve_data_dir
from editbench.data.records import EditRequest
from editbench.data.spec import FORMATS, ON_BAD_RECORD, SELECTIONS, ZSRE_CONVENTIONS

__all__ = [
    "DATA_ENV",
    "FORMATS",
    "ON_BAD_RECORD",
    "SELECTIONS",
    "ZSRE_CONVENTIONS",
    "EditRequest",
    "load_requests",
    "requests_from_records",
    "resolve_data_dir",
]
