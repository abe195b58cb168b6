"""Forward passes that compute logits only where they are needed.

The LM head (49k words for SmolLM2, 128k for LLaMA3) is the largest matmul of a forward pass;
editing and scoring read a handful of positions per prompt, so the head runs on those alone.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch

from editbench.locate.prompts import Batch
from editbench.locate.trace import Trace, frozen_prefix


def final_hidden(model, batch: Batch, cache=None) -> torch.Tensor:
    """Last hidden states (after the final norm) of the base model: (B, T, d).

    With a KV `cache` holding the first columns, `batch` holds only the new columns (its mask
    covers all of them); the cache is extended in place.
    """
    kwargs = {} if batch.position_ids is None else {"position_ids": batch.position_ids}
    if cache is not None:
        kwargs |= {_cache_kwarg(type(model.base_model)): cache, "use_cache": True}
        top = len(cache.layers) - 1
        cached = cache.get_seq_length(top)
    else:
        kwargs["use_cache"] = False
    out = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs)
    if cache is not None and cached == 0 and cache.get_seq_length(top) == 0:
        # A forward that swallows an unknown keyword in **kwargs would silently run later columns
        # without their prefix (it happened with transformers 5.17, which has no `cache=`). Checked
        # on the first pass into an empty cache, where every layer runs; later passes may replay
        # all layers up to the top through frozen_prefix and legitimately leave it as it was.
        raise RuntimeError(f"{type(model.base_model).__name__} did not fill the KV cache; this transformers "
                           "version passes caches under another keyword")
    return out.last_hidden_state


@functools.cache
def _cache_kwarg(base_model_class: type) -> str:
    """The forward's keyword for a KV cache: `cache` (transformers >= 5.2x) or `past_key_values`.

    transformers renamed it; the old name is still accepted with a deprecation warning, but older
    versions drop `cache=` into **kwargs without a word.
    """
    params = inspect.signature(base_model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Apply the output head (tied or not, via get_output_embeddings) and any logit soft-capping."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def logits_at(model, batch: Batch, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Logits at (rows[i], cols[i]) for every i: (N, vocab), float32."""
    hidden = final_hidden(model, batch)
    return head_logits(model, hidden[rows, cols])


@dataclass
class FrozenBelow:
    """The decoder layers strictly below `layer` and their output on a batch, computed once.

    Training something at `layer` never changes what the layers below it compute, so each step
    replays `output` through `frozen_prefix(layers, output)` instead of recomputing them.
    """

    layers: list
    output: torch.Tensor | None

    @classmethod
    @torch.no_grad()
    def capture(cls, model, spec, batch: Batch, layer: int) -> FrozenBelow:
        layers = [spec.layer(model, i) for i in range(layer)]
        if not layers:
            return cls([], None)
        with Trace(layers[-1], retain_output=True) as tracer:
            final_hidden(model, batch)
        return cls(layers, tracer.output)

    def hidden(self, model, batch: Batch) -> torch.Tensor:
        """final_hidden(model, batch) with the frozen layers replayed."""
        with frozen_prefix(self.layers, self.output):
            return final_hidden(model, batch)
