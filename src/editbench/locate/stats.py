"""Second-moment statistics C0 = E[k kᵀ] of the edited projection's inputs (§1.4, D5, D6).

C0 is a *mean* over token positions of a text corpus (WikiText-2 offline), the normalisation
the reference λ values assume. All requested layers are collected in one pass with one hook
each; the result is cached as safetensors under $EDITBENCH_CACHE/stats, keyed by the model's
weight fingerprint, layer, corpus, token count, max length and dtype, so a cache is never
reused for another model or setting.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from editbench.cache import TensorCache, digest
from editbench.data.download import data_file
from editbench.demo import STATS_FILE, demo_dir, is_demo_dir
from editbench.errors import DataError
from editbench.locate.corpus import datasets_text, is_datasets_corpus
from editbench.locate.trace import TraceDict

log = logging.getLogger(__name__)

CORPORA = {"wikitext2": "wikitext2/wiki.test.raw"}
# The demo corpus lives in the package (editbench.demo), not in a data directory; a run on the demo
# data dir uses it in place of WikiText-2, which cannot be shipped.
DEMO_CORPUS = "demo"


@dataclass(frozen=True)
class StatsParams:
    corpus: str = "wikitext2"
    n_tokens: int = 100_000
    max_len: int = 256
    batch_size: int = 8
    dtype: str = "float32"  # dtype of each batch's k kᵀ product; sums accumulate in float64
    # a `datasets` corpus (locate/corpus.py): its config, split, text column and rows read
    corpus_config: str | None = None
    split: str = "train"
    text_field: str = "text"
    n_samples: int | None = None

    @classmethod
    def from_cfg(cls, cfg) -> StatsParams:
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


def corpus_text(corpus: str, data_dir: Path | None) -> tuple[str, str]:
    """(text, corpus id). `corpus` is a key of CORPORA (under data_dir), "demo", or a path to a text file."""
    if corpus in CORPORA and is_demo_dir(data_dir):
        log.warning("the demo data has no %s; C0 comes from the demo statistics text (stats.corpus=%s), a "
                    "rough estimate from a few thousand tokens", corpus, DEMO_CORPUS)
        corpus = DEMO_CORPUS
    if corpus == DEMO_CORPUS:
        path = demo_dir() / STATS_FILE
    elif corpus in CORPORA:
        if data_dir is None:
            raise DataError(f"statistics corpus {corpus!r} needs a data directory; set data_dir= or EDITBENCH_DATA")
        # Missing from data_dir: the download cache, or (EDITBENCH_ONLINE=1) a checked download.
        path = data_file(Path(data_dir), CORPORA[corpus], hint="or set stats.corpus= to a text file")
    else:
        path = Path(corpus)
    if not path.is_file():
        raise DataError(f"statistics corpus file {path} not found; set stats.corpus= to a text file or fix data_dir")
    text = path.read_text(encoding="utf-8")
    corpus_id = f"{corpus}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    return text, corpus_id


def token_windows(tokenizer, text: str, n_tokens: int, max_len: int) -> list[list[int]]:
    """Non-empty paragraphs tokenised and cut into windows of at most max_len, up to n_tokens in all."""
    windows, total = [], 0
    for para in text.split("\n"):
        para = para.strip()
        if not para or (para.startswith("=") and para.endswith("=")):  # WikiText headings
            continue
        ids = tokenizer(para, add_special_tokens=True)["input_ids"]
        for start in range(0, len(ids), max_len):
            chunk = ids[start : start + max_len]
            if len(chunk) < 2:
                continue
            chunk = chunk[: n_tokens - total]
            windows.append(chunk)
            total += len(chunk)
            if total >= n_tokens:
                return windows
    return windows


class SecondMoments:
    """Lazily computed, cached C0 per layer for one model."""

    def __init__(self, model, tokenizer, spec, fingerprint: str, params: StatsParams, data_dir: Path | None):
        self.model, self.tokenizer, self.spec = model, tokenizer, spec
        self.fingerprint, self.params, self.data_dir = fingerprint, params, data_dir
        self._memory: dict[int, torch.Tensor] = {}
        self.cache = TensorCache("stats", "mom2")
        self._corpus_id: str | None = None

    def key(self, layer: int) -> str:
        p = self.params
        return digest(self.fingerprint, layer, self.spec.down_proj_template, self.corpus_id, p.n_tokens,
                      p.max_len, p.dtype)

    @property
    def corpus_id(self) -> str:
        if self._corpus_id is None:
            p = self.params
            if is_datasets_corpus(p.corpus):
                self._text, self._corpus_id = datasets_text(p.corpus, p.corpus_config, p.split, p.text_field,
                                                            p.n_samples)
            else:
                self._text, self._corpus_id = corpus_text(p.corpus, self.data_dir)
        return self._corpus_id

    def path(self, layer: int) -> Path:
        return self.cache.path(f"c0-layer{layer}", self.key(layer))

    def __call__(self, layer: int) -> torch.Tensor:
        return self.get([layer])[layer]

    def get(self, layers: list[int]) -> dict[int, torch.Tensor]:
        """C0 for each layer (float64, m×m), computing all missing layers in one pass."""
        missing = []
        for layer in layers:
            if layer in self._memory:
                continue
            # straight onto the layer's device: no host copy when the model is on a GPU
            cached = self.cache.load(f"c0-layer{layer}", self.key(layer), self.device(layer))
            if cached is not None:
                self._memory[layer] = cached.double()
            else:
                missing.append(layer)
        if missing:
            self._memory.update(self._compute_and_save(missing))
        return {layer: self._memory[layer] for layer in layers}

    def prepare(self, layers: list[int]) -> None:
        """Compute the layers not cached yet (one pass), write them, and keep none in memory: an editor
        reads each C0 when it first needs it (at d_ff 14336 every C0 held is 1.6 GB of float64)."""
        missing = [layer for layer in layers if layer not in self._memory and not self.path(layer).is_file()]
        if missing:
            self._compute_and_save(missing)

    def _compute_and_save(self, layers: list[int]) -> dict[int, torch.Tensor]:
        """C0 of these layers in one pass over the corpus, each written to the keyed cache."""
        computed = self._compute(layers)
        for layer, c0 in computed.items():
            self.cache.save(f"c0-layer{layer}", self.key(layer), c0, {"key": self.key(layer), "corpus": self.corpus_id})
        return computed

    def release(self, layer: int) -> None:
        """Drop `layer`'s C0 from memory (read again from the cache if asked for later)."""
        self._memory.pop(layer, None)

    def device(self, layer: int) -> torch.device:
        """Where C0 of `layer` lives: with the edited matrix (the editors' solves run there)."""
        return self.spec.weight_device(self.model, layer)

    @torch.no_grad()
    def _compute(self, layers: list[int]) -> dict[int, torch.Tensor]:
        from tqdm.auto import tqdm

        from editbench.locate.prompts import pad_id, pad_right

        self.corpus_id  # noqa: B018 (loads the text)
        windows = token_windows(self.tokenizer, self._text, self.params.n_tokens, self.params.max_len)
        dtype = getattr(torch, self.params.dtype)
        device = next(self.model.parameters()).device
        m = self.spec.ffn_size
        sums = {layer: torch.zeros(m, m, dtype=torch.float64, device=device) for layer in layers}
        count = 0
        # the highest layer last: the forward stops after it (C0 of layer l needs nothing above l)
        modules = {layer: self.spec.down_proj(self.model, layer) for layer in sorted(layers)}
        bs = self.params.batch_size
        for start in tqdm(range(0, len(windows), bs), desc=f"C0 for layers {layers}", leave=False):
            batch = pad_right(windows[start : start + bs], pad_id(self.tokenizer), device)
            with TraceDict(modules, retain_input=True, stop=True) as traces:
                self.model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                      use_cache=False)
            mask = batch.attention_mask.bool()
            count += int(mask.sum())
            for layer, trace in traces.items():
                keys = trace.input[mask].to(dtype)
                sums[layer] += (keys.T @ keys).double()
        if count == 0:
            raise DataError(f"statistics corpus {self.params.corpus!r} gave no tokens")
        log.info("C0 for layers %s from %d tokens", layers, count)
        # In place, and left on the model's device: at d_ff 14336 each C0 is 1.6 GB in float64, and a
        # second copy per layer (s / count, then .cpu()) doubled the peak and kept C0 on the host.
        return {layer: s.div_(count) for layer, s in sums.items()}

