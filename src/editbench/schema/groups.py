"""The schemas of the model, dataset, downstream, stats and scoring groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from editbench.schema.rules import ge, key, one_of, optional


@dataclass
class ModelConfig:
    name: str = key()
    source: str = key(one_of("embedded", "gguf", "hf", "tiny", "random"))
    path: str | None = key()
    gguf_file: str | None = key()
    dtype: str = key(one_of("float32", "bfloat16", "float16"))
    device: str = key()
    device_map: Any = key()
    trust_remote_code: bool = key()
    tiny: dict[str, Any] | None = key()
    n_layers: int | None = key(optional(ge(1)), default=None, doc="decoder blocks, for checks before loading",
                                  descriptive=True)
    tokenizer: str | None = key(default=None, doc="source random with a shipped shape: a tokenizer dir (null: tiny)")


@dataclass
class DatasetConfig:
    name: str = key()
    label: str = key()
    format: str = key()
    file: str = key()
    selection: str = key(one_of("first", "random"))
    on_bad_record: str = key(one_of("error", "skip"))
    scorer: str = key(one_of("easyedit", "memit"))
    split: str | None = key(default=None)
    rome_file: str | None = key(default=None)
    setting: str | None = key(default=None)
    convention: str | None = key(default=None)


@dataclass
class DownstreamConfig:
    tasks: list[str] = key()
    n_examples: int | None = key(optional(ge(1)))
    every_k_steps: int = key(ge(0))
    batch_size: int = key(ge(1))
    max_length: int = key(ge(1))
    chat_template: bool = key()


@dataclass
class StatsConfig:
    corpus: str = key()
    n_tokens: int = key(ge(1))
    max_len: int = key(ge(1))
    batch_size: int = key(ge(1))
    dtype: str = key(one_of("float32", "float64", "bfloat16", "float16"))
    corpus_config: str | None = key(default=None, doc="a datasets corpus's config, e.g. 20220301.en")
    split: str = key(default="train", doc="a datasets corpus's split")
    text_field: str = key(default="text", doc="a datasets corpus's text column")
    n_samples: int | None = key(optional(ge(1)), default=None, doc="a datasets corpus's rows read (the references: 100000)")


@dataclass
class ScoringConfig:
    batch_size: int = key(ge(1))
