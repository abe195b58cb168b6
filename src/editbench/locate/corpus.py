"""C0's text from a Hugging Face `datasets` source, as the references compute their statistics.

MEMIT / AlphaEdit (`rome/layer_stats.py`) read Wikipedia through `datasets` (wikipedia
20220301.en, 100,000 samples). `stats.corpus=` names one of:
  * a hub id, e.g. ``stats.corpus=wikimedia/wikipedia stats.corpus_config=20231101.en`` (streamed:
    only the first ``stats.n_samples`` rows are downloaded; needs EDITBENCH_ONLINE=1 or the hub cache);
  * a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (offline).
The corpus id in C0's cache key names the source, config, split, row count and a hash of the text.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

from editbench.errors import DataError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_datasets_corpus(corpus: str) -> bool:
    """A saved `datasets` directory, or a hub id (owner/name) that is not a local file."""
    path = Path(corpus).expanduser()
    if path.is_dir():
        return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()
    return not path.exists() and bool(_HUB_ID.match(corpus))


def datasets_text(corpus: str, config: str | None, split: str, text_field: str,
                  n_samples: int | None) -> tuple[str, str]:
    """(text: the rows' `text_field` joined by newlines, corpus id) of a `datasets` corpus."""
    path = Path(corpus).expanduser()
    if path.is_dir():
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(path))
        if isinstance(ds, DatasetDict):
            if split not in ds:
                raise DataError(f"stats.corpus={corpus} has splits {', '.join(ds)}, not {split!r}; set stats.split=")
            ds = ds[split]
        _check_field(ds.column_names, text_field, corpus)
        n = len(ds) if n_samples is None else min(int(n_samples), len(ds))
        texts = ds.select(range(n))[text_field]
        source = f"{path.resolve()}@{ds._fingerprint}"
    else:
        if n_samples is None:
            raise DataError(f"stats.corpus={corpus} is streamed from the hub; set stats.n_samples= (the references "
                            "read 100000 rows)")
        from datasets import load_dataset

        try:
            stream = load_dataset(corpus, config, split=split, streaming=True)
        except Exception as e:  # datasets raises many kinds (offline, unknown config, missing repo)
            raise DataError(f"could not stream stats.corpus={corpus} (config {config}, split {split}): {e}; "
                            "allow the hub (EDITBENCH_ONLINE=1 / HF_HUB_OFFLINE=0) or save it with "
                            "save_to_disk and pass the directory") from e
        rows = list(itertools.islice(stream, int(n_samples)))
        if rows:
            _check_field(list(rows[0]), text_field, corpus)
        texts = [r[text_field] for r in rows]
        n, source = len(texts), corpus
    text = "\n".join(t for t in texts if t)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return text, f"datasets:{source}:{config}:{split}:{text_field}:n={n}:{digest}"


def _check_field(columns: list[str], text_field: str, corpus: str) -> None:
    if text_field not in columns:
        raise DataError(f"stats.corpus={corpus} has no column {text_field!r} (columns: {', '.join(columns)}); "
                        "set stats.text_field=")
