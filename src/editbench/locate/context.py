"""What every editor gets from the harness: the model and the shared machinery around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class EditContext:
    """The model being edited plus what methods share: templates and statistics.

    `templates` are the context-template groups of §1.1 (first group is ["{}"]); `stats` returns
    C0 = E[k kᵀ] for a layer (see locate/stats.py); `originals` holds each edited matrix as it was
    before its first edit (filled by Editor.write_weight).
    """

    model: Any
    tokenizer: Any
    spec: Any
    templates: list[list[str]]
    stats: Any = None
    originals: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
