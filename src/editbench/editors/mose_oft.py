"""`mose_oft`: MOSE as released (famoustourist/MOSE, `oft_main.py`), methods.md §8.2, D1.

The released code does not solve the paper's Procrustes problem. It trains a block-diagonal
orthogonal matrix on the *key* (d_ff) side of down_proj:
    W = W0 · blockdiag(Q_1..Q_r)ᵀ,   Q_b = (I − S_b)(I + S_b)⁻¹,   S_b = (R_b − R_bᵀ)/2   (Cayley)
with each block R_b kept in its own Frobenius ball of radius ε·(m/r)²/√r (COFT, `project_batch` in
the released oft_main.py: `self.eps = eps·b·b`, then `eps/√r` per block, norms over dims (1, 2)),
Adam on the target NLL of "prompt target" (prompt masked, no KL), the same R trained on across
sequential edits. Rotating keys instead of outputs also preserves W0's singular values.
`coft_projection: stack` is an earlier reading kept as a labelled variant: the whole stack of r
blocks in one ball of that radius, which allows √r times less rotation in total.
"""

from __future__ import annotations

import math

import torch

from editbench.data.records import EditRequest
from editbench.editors.base import Editor, register
from editbench.locate.finetune import minimise_target_nll
from editbench.schema.check import setting
from editbench.schema.methods import MoseOftConfig


def cayley(R: torch.Tensor) -> torch.Tensor:
    """Blocks (r, b, b) → orthogonal blocks (I − S)(I + S)⁻¹ with S the skew part of R."""
    S = 0.5 * (R - R.transpose(-1, -2))
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    # (I − S)(I + S)⁻¹ = ((I + S)⁻ᵀ (I − S)ᵀ)ᵀ, a solve instead of an inverse; one 2-D solve per block:
    # torch's *batched* CPU LU runs MKL's getrf on several threads at once for blocks of 256 rows and
    # more (SmolLM2: b = 384) and returns invalid pivots, i.e. an error or a wrong answer, whenever
    # torch uses more than one thread (pytorch/pytorch#142815, unfixed in 2.13; fix proposed in #181570).
    return torch.stack([torch.linalg.solve((eye + s).T, (eye - s).T).T for s in S])


def rotate_blocks(W: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """W · blockdiag(Q)ᵀ for W (d, m) and blocks Q (r, b, b), block by block: the m×m block-diagonal matrix is
    never formed (at LLaMA3-8B's m = 14336 it is 1.6 GB in float64 and the product 16× the blockwise FLOPs)."""
    d, (r, b, _) = W.shape[0], Q.shape
    return torch.einsum("drb,rcb->drc", W.reshape(d, r, b), Q.to(W.dtype)).reshape(d, r * b)


def block_orthogonality_error(Q: torch.Tensor) -> float:
    """‖blockdiag(Q)ᵀ blockdiag(Q) − I‖_F from the r blocks alone."""
    eye = torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
    return float(torch.linalg.matrix_norm(Q.transpose(-1, -2) @ Q - eye).square().sum().sqrt())


def coft_project(R: torch.Tensor, radius: float, mode: str = "per_block") -> None:
    """In place: scale R (r, b, b) back onto the Frobenius ball of `radius` around 0 where it left it.

    per_block: each block separately (released `project_batch`); stack: the r blocks as one matrix.
    """
    # the allowed modes exist once, as the schema's rule for method.coft_projection
    if setting(MoseOftConfig, {"coft_projection": mode}, "coft_projection") == "per_block":
        norms = torch.linalg.matrix_norm(R, dim=(-2, -1))
        R.mul_(torch.where(norms > radius, radius / norms, torch.ones_like(norms))[:, None, None])
    else:
        norm = torch.linalg.matrix_norm(R.reshape(-1, R.shape[-1]))
        if norm > radius:
            R.mul_(radius / norm)


@register("mose_oft")
class MoseOft(Editor):
    def __init__(self, ctx, cfg) -> None:
        super().__init__(ctx, cfg)
        self.layers = [int(x) for x in cfg.layers]
        self.n_blocks = int(cfg.n_blocks)
        m = ctx.spec.ffn_size
        if m % self.n_blocks:
            from editbench.errors import ConfigError

            raise ConfigError(f"method.n_blocks={self.n_blocks} must divide the FFN width {m}")
        b = m // self.n_blocks
        # COFT radius ε·(m/r)²/√r, per block (released oft_main.py) or for the stack (variant)
        self.radius = float(cfg.coft_eps) * b**2 / math.sqrt(self.n_blocks)
        self.projection = setting(MoseOftConfig, cfg, "coft_projection")  # per_block (released) | stack
        self.R = {layer: torch.zeros(self.n_blocks, b, b, device=ctx.device) for layer in self.layers}

    def _project(self, R: torch.Tensor) -> None:
        coft_project(R, self.radius, self.projection)

    def edit(self, requests: list[EditRequest]) -> dict:
        ctx, cfg = self.ctx, self.cfg
        originals = {layer: self.original(layer) for layer in self.layers}
        # the step's update is measured from the weight before it (W0·blockdiag(Q_prev)ᵀ), not from W0
        before = {layer: self.ctx.spec.get_weight(ctx.model, layer).clone() for layer in self.layers}
        for layer in self.layers:  # train against W0 with the rotation applied to the keys
            self.write_weight(layer, originals[layer], record=False)  # every write through the guard (issue 26)
        params = {layer: R.clone().requires_grad_(True) for layer, R in self.R.items()}

        def rotate_keys(layer):
            def pre_hook(_module, args):
                k = args[0]
                Q = cayley(params[layer])  # (r, b, b)
                blocks = k.reshape(*k.shape[:-1], self.n_blocks, -1)
                return (torch.einsum("...rb,rbc->...rc", blocks, Q.to(k.dtype)).reshape(k.shape),)

            return pre_hook

        handles = [ctx.spec.down_proj(ctx.model, layer).register_forward_pre_hook(rotate_keys(layer))
                   for layer in self.layers]
        try:
            losses = minimise_target_nll(
                ctx, requests, list(params.values()), min(self.layers), steps=int(cfg.steps), lr=float(cfg.lr),
                weight_decay=float(cfg.weight_decay), project=lambda: [self._project(R) for R in params.values()])
        finally:
            for h in handles:
                h.remove()
        diag = {"layers": self.layers, "loss_initial": losses[0], "loss_final": losses[-1], "orthogonality": {}}
        for layer in self.layers:
            # the hook maps a key row k to k·blockdiag(Q), i.e. the weight acts as W0 · blockdiag(Q)ᵀ
            Q = cayley(params[layer].detach().double())  # (r, b, b)
            if self.write_weight(layer, rotate_blocks(originals[layer], Q), since=before[layer]):
                self.R[layer] = params[layer].detach()
            else:  # rejected (recorded by the guard): back to the weight of the previous R
                previous = cayley(self.R[layer].double())
                self.write_weight(layer, rotate_blocks(originals[layer], previous), record=False)
            diag["orthogonality"][str(layer)] = block_orthogonality_error(Q)
        return diag

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"R.{layer}": R for layer, R in self.R.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            self.R[int(key.split(".")[1])] = value.to(self.ctx.device)
