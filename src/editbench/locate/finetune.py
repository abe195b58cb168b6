"""Gradient training of parameters on the target NLL of the bare edit prompts.

Shared by the editors that learn weights by gradient instead of a closed form (`ft`, and the
released MOSE's `mose_oft`): prompts without context templates, teacher-forced NLL of the
target tokens (prompt masked, no KL), Adam, a projection after every step, and the layers below
the lowest trained layer replayed from one no-grad pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from editbench.data.records import EditRequest
from editbench.locate.forward import FrozenBelow
from editbench.locate.values import build_prompts, target_losses


def minimise_target_nll(
    ctx,
    requests: list[EditRequest],
    params: list[torch.Tensor],
    bottom_layer: int,
    *,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    early_stop: float | None = None,
    project: Callable[[], None] | None = None,
) -> list[list[float]]:
    """Adam on `params` (leaf tensors with requires_grad) for at most `steps` steps.

    Returns the per-request NLL of every step. Stops early once every request's NLL is below
    `early_stop`; calls `project()` under no_grad after every optimiser step.
    """
    prompts = build_prompts(ctx.tokenizer, requests, ["{}"], ctx.device)
    below = FrozenBelow.capture(ctx.model, ctx.spec, prompts.batch, bottom_layer)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    losses: list[list[float]] = []
    for _ in range(steps):
        opt.zero_grad()
        nll, _ = target_losses(ctx.model, below.hidden(ctx.model, prompts.batch), prompts, len(requests))
        losses.append(nll.tolist())
        if early_stop is not None and bool((nll < early_stop).all()):
            break
        nll.sum().backward()
        opt.step()
        if project is not None:
            with torch.no_grad():
                project()
    return losses
