"""`ft`: norm-constrained fine-tuning of one down projection on the target NLL (FT-L style).

The simplest additive editor; it proves the loop and is the additive reference in MOSE's
norm / condition-number plots. Each entry of W stays within ±norm_constraint of its value
before the edit (ROME's FT-L constraint), Adam on the bare prompt's target NLL.
"""

from __future__ import annotations

import torch

from editbench.data.records import EditRequest
from editbench.editors.base import Editor, register
from editbench.locate.finetune import minimise_target_nll


@register("ft")
class FineTune(Editor):
    def edit(self, requests: list[EditRequest]) -> dict:
        cfg, ctx = self.cfg, self.ctx
        layer = int(cfg.layer)
        param = ctx.spec.down_proj(ctx.model, layer).weight
        before = param.detach().clone()
        self.original(layer)
        limit = float(cfg.norm_constraint)

        def clamp() -> None:  # each entry within ±norm_constraint of its value before this edit
            param.copy_(torch.clamp(param, before - limit, before + limit))

        param.requires_grad_(True)
        try:
            losses = minimise_target_nll(ctx, requests, [param], layer, steps=int(cfg.steps), lr=float(cfg.lr),
                                         early_stop=float(cfg.early_stop), project=clamp)
        finally:
            param.requires_grad_(False)
        new = ctx.spec.get_weight(ctx.model, layer).to(torch.float64)
        with torch.no_grad():
            param.copy_(before)
        accepted = self.write_weight(layer, new)
        return {"layers": [layer], "accepted": accepted, "loss_initial": losses[0], "loss_final": losses[-1],
                "steps": len(losses)}
