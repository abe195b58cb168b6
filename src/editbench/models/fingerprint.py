"""A cheap, exact id of a model's weights, for cache keys (C0 statistics, projectors, downstream scores)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

_SAMPLES_PER_TENSOR = 4096


def model_fingerprint(model: nn.Module) -> str:
    """A hex id of the weights: names, shapes, dtypes and a strided sample of every parameter.

    Cheap (a few thousand values per tensor) and exact (no float reductions, so it does not depend
    on the device or thread count). It identifies *which* weights were loaded, for cache keys; it is
    not meant to notice a small edit to one row.
    """
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(f"{name}|{tuple(p.shape)}|{p.dtype}\n".encode())
        if p.is_meta:  # offloaded by device_map: its values are not in memory
            continue
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
        sample = flat[::step][:_SAMPLES_PER_TENSOR]
        h.update(sample.to(device="cpu", dtype=torch.float32).numpy().tobytes())
    return h.hexdigest()
