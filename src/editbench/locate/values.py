"""The value optimisation: find δ so that h0 + δ at one site makes the model say the target (§1.3).

Shared by every locate-then-edit method. `site="mlp_out"` adds δ to the MLP output of a layer
(ROME, MOSE's layer scores); `site="residual"` adds δ to a decoder block's output (z* of MEMIT,
EMMET, AlphaEdit, RECT, PRUNE and MOSE). Loss per request (ROME compute_v / MEMIT compute_z):
    NLL(target | prompts) + kl_factor·KL(p_δ ‖ p_0 on "{subject} is a") + wd·‖δ‖/‖h0‖²,
Adam on δ, δ clamped to ‖δ‖ ≤ clamp·‖h0‖, early stop when the loss is below `early_stop`.

`optimizer="newton"` replaces Adam by Newton-Raphson steps on the scalar equation L(δ) = L*
(L* = early_stop / 2), i.e. δ ← δ − (L − L*)·g/‖g‖² (a Polyak step with a known target): the
step follows the gradient's own length instead of Adam's per-coordinate normalisation, stays in
the span of the gradients and, for a loss convex along its path, approaches the level set from
above without overshooting. Where the target is out of reach (a loss floor above L*), the steps
overshoot and oscillate: rows whose loss rose get half the step from then on, and each row
returns its lowest-loss δ. ‖δ‖ then estimates how far the site must move for the edit to land,
which is what MOSE's layer score (eq. 22) compares across layers (issue 26). Adam's first step
has length lr·√d whatever the gradient, so a few Adam steps say little about that distance.

Speed (issue 4): the layers below the site never change during the optimisation, so their
output is computed once and replayed (`frozen_prefix`); the LM head runs only at the target
and KL positions; all prompts of all requests share one forward; no weight gradients exist.
`fast=False` runs the straightforward full forward, kept as the reference in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from editbench.data.records import EditRequest
from editbench.locate.forward import final_hidden, head_logits
from editbench.locate.prompts import Batch, encode_with_subject, pad_both, pad_id, target_ids
from editbench.locate.trace import TraceDict, add_at_positions, frozen_prefix, site_module
from editbench.timing import timed

KL_PROMPT = "{} is a"


@dataclass(frozen=True)
class ValueParams:
    steps: int = 25
    lr: float = 0.5
    weight_decay: float = 1e-3
    clamp_norm_factor: float = 4.0
    kl_factor: float = 0.0625
    early_stop: float = 0.05
    optimizer: str = "adam"  # adam (ROME / MEMIT) | newton (step (L − L*)/‖g‖² along −g, see above)

    @classmethod
    def from_cfg(cls, cfg) -> ValueParams:
        names = cls.__dataclass_fields__
        return cls(**{k: cfg[k] for k in names if k in cfg})


@dataclass
class ValueResult:
    values: torch.Tensor  # (n, d): h0 + δ, the desired vector at the site
    h0: torch.Tensor  # (n, d): the site's vector on the bare prompt before optimisation
    delta: torch.Tensor  # (n, d)
    losses: list[list[float]] = field(default_factory=list)  # per step, per request
    steps: int = 0

    def diagnostics(self) -> dict:
        ratio = (self.delta.norm(dim=1) / self.h0.norm(dim=1)).tolist()
        return {"v_steps": self.steps, "v_loss_final": self.losses[-1] if self.losses else [],
                "v_loss_initial": self.losses[0] if self.losses else [], "delta_over_h0": ratio}


@dataclass
class RewritePrompts:
    """All rewriting and KL prompts of a batch of requests, padded into one tensor batch.

    With `aligned`, rows are left-padded so that every prompt's subject-last token sits in the
    same column `subject_col`: then everything left of that column is independent of δ.
    """

    batch: Batch
    delta_rows: torch.Tensor  # prompt index of every δ insertion
    delta_cols: torch.Tensor  # its subject-last position
    delta_owner: torch.Tensor  # which request's δ
    target_rows: torch.Tensor  # positions whose logits predict target tokens
    target_cols: torch.Tensor
    target_tokens: torch.Tensor
    target_prompt: torch.Tensor  # rewriting prompt of each target token
    prompt_owner: torch.Tensor  # request of each rewriting prompt
    kl_rows: torch.Tensor
    kl_cols: torch.Tensor
    n_rewrite: int
    subject_col: int | None = None

    def shifted(self, offset: int) -> RewritePrompts:
        """The same prompts seen from column `offset` on (for a forward over the suffix only)."""
        return replace(self, delta_cols=self.delta_cols - offset, target_cols=self.target_cols - offset,
                       kl_cols=self.kl_cols - offset, batch=self.batch.columns(offset))


def build_prompts(tokenizer, requests: list[EditRequest], templates: list[str], device,
                  align: bool = False) -> RewritePrompts:
    seqs, subject = [], []
    t_rows, t_cols, t_tok, t_prompt, p_owner = [], [], [], [], []
    for r_idx, req in enumerate(requests):
        tgt = target_ids(tokenizer, req.target_new)
        for template in templates:
            enc = encode_with_subject(tokenizer, template, req.prompt, req.subject)
            p = len(seqs)
            seqs.append(list(enc.ids) + tgt[:-1])
            subject.append(enc.subject_last)
            p_owner.append(r_idx)
            for j, tok in enumerate(tgt):
                t_rows.append(p), t_cols.append(len(enc.ids) - 1 + j), t_tok.append(tok), t_prompt.append(p)
    n_rewrite = len(seqs)
    for req in requests:
        enc = encode_with_subject(tokenizer, "{}", KL_PROMPT, req.subject)
        seqs.append(list(enc.ids))
        subject.append(enc.subject_last)
    owner = p_owner + list(range(len(requests)))
    col = max(subject) if align else None
    left = [col - s for s in subject] if align else [0] * len(seqs)

    def t(x):
        return torch.tensor(x, dtype=torch.long, device=device)

    return RewritePrompts(
        batch=pad_both(seqs, left, pad_id(tokenizer), device),
        delta_rows=t(range(len(seqs))), delta_cols=t([s + n for s, n in zip(subject, left, strict=True)]),
        delta_owner=t(owner), target_rows=t(t_rows), target_cols=t([c + left[r] for c, r in zip(t_cols, t_rows,
                                                                                              strict=True)]),
        target_tokens=t(t_tok), target_prompt=t(t_prompt), prompt_owner=t(p_owner),
        kl_rows=t(range(n_rewrite, len(seqs))), kl_cols=t([subject[i] + left[i] for i in range(n_rewrite, len(seqs))]),
        n_rewrite=n_rewrite, subject_col=col,
    )


def target_losses(model, hidden, pr: RewritePrompts, n: int, log_p0: torch.Tensor | None = None,
                  full_head: bool = False):
    """Per-request NLL (mean over each prompt's target tokens, then over the request's prompts)
    and KL(p ‖ p_0) on the KL prompts (None when log_p0 is None).

    The LM head runs only at the target and KL positions; `full_head` runs it at every position
    first, as a plain `model(...).logits` would (the benchmark's reference, same numbers).
    """
    everywhere = head_logits(model, hidden) if full_head else None

    def head_at(rows, cols):
        return everywhere[rows, cols] if everywhere is not None else head_logits(model, hidden[rows, cols])

    logp = torch.log_softmax(head_at(pr.target_rows, pr.target_cols), dim=-1)
    token_logp = logp.gather(1, pr.target_tokens[:, None]).squeeze(1)
    n_prompts = pr.n_rewrite
    prompt_sum = torch.zeros(n_prompts, device=hidden.device).index_add(0, pr.target_prompt, token_logp)
    prompt_len = torch.zeros(n_prompts, device=hidden.device).index_add(
        0, pr.target_prompt, torch.ones_like(token_logp))
    prompt_nll = -prompt_sum / prompt_len
    nll = torch.zeros(n, device=hidden.device).index_add(0, pr.prompt_owner, prompt_nll)
    nll = nll / torch.bincount(pr.prompt_owner, minlength=n).float()
    if log_p0 is None:
        return nll, None
    log_p = torch.log_softmax(head_at(pr.kl_rows, pr.kl_cols), dim=-1)
    kl = F.kl_div(log_p0, log_p, log_target=True, reduction="none").sum(dim=-1)  # KL(p_δ ‖ p_0)
    return nll, kl


@timed("values")
def optimize_values(
    ctx,
    requests: list[EditRequest],
    templates: list[str],
    layer: int | Sequence[int],
    site: str,
    params: ValueParams,
    *,
    fast: bool = True,
    full_head: bool = False,
) -> ValueResult:
    """Optimise one δ per request at (layer, site); return v* = h0 + δ for each.

    `ctx` is anything with the model, its tokenizer and its ModelSpec (an EditContext, a LoadedModel).

    `layer` may be a list of L layers: then every request is optimised independently at each
    of them in the same forward passes (MOSE's layer scores), and the result's rows are
    layer-major: row j·n + r is request r at layers[j].

    Fast path: prompts are aligned on the subject's last token (column c). δ changes nothing
    left of c (causal attention) and nothing below the site, so one no-grad pass fills a KV
    cache for columns < c and records the hidden state leaving the last layer below the site;
    every optimisation step then runs only columns ≥ c through the layers above the site.
    Small-batch steps on a CPU are bound by reading the weights, so sharing passes between
    layers and requests is nearly free. `fast=False, full_head=True` is the straightforward
    implementation (full forward, full-vocabulary logits), kept as the reference.
    """
    model, spec = ctx.model, ctx.spec
    if site not in ("residual", "mlp_out"):
        raise ValueError(f"unknown value site {site!r}; use 'residual' or 'mlp_out'")
    device = next(model.parameters()).device
    layers = [layer] if isinstance(layer, int) else [int(x) for x in layer]
    n_req = len(requests)
    n = n_req * len(layers)
    pr = build_prompts(ctx.tokenizer, [r for _ in layers for r in requests], templates, device, align=fast)
    sites = {j: site_module(spec, model, lay, site) for j, lay in enumerate(layers)}
    # rows of each layer's copies of the prompts
    site_rows = [(pr.delta_owner // n_req) == j for j in range(len(layers))]
    prefix_end = min(layers) if site == "residual" else min(layers) - 1  # last layer strictly below every δ
    prefix_layers = [spec.layer(model, i) for i in range(prefix_end + 1)] if fast else []
    cache = _new_cache(model, spec) if fast else None

    with torch.no_grad():
        with TraceDict({**sites, **({"below": prefix_layers[-1]} if prefix_layers else {})},
                       retain_output=True) as traces:
            hidden0 = final_hidden(model, pr.batch, cache=cache)
        below = traces["below"] if prefix_layers else None
        first_prompt = torch.arange(n, device=device) * len(templates)  # each δ's bare prompt
        h0 = torch.stack([traces[int(o) // n_req].output[pr.delta_rows[p], pr.delta_cols[p]]
                          for o, p in enumerate(first_prompt.tolist())]).float()
        log_p0 = torch.log_softmax(head_logits(model, hidden0[pr.kl_rows, pr.kl_cols]), dim=-1)
        start = pr.subject_col if cache is not None else 0
        cached_below = below.output[:, start:] if below is not None else None
        prefix_kv = _crop(cache, start) if cache is not None else None
        step_prompts = pr.shifted(start) if start else pr

    if params.optimizer not in ("adam", "newton"):
        raise ValueError(f"unknown value optimizer {params.optimizer!r}; use 'adam' or 'newton'")
    delta = torch.zeros(n, h0.shape[1], device=device, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=params.lr) if params.optimizer == "adam" else None
    h0_norm = h0.norm(dim=1)
    max_norm = params.clamp_norm_factor * h0_norm
    done = torch.zeros(n, dtype=torch.bool, device=device)
    losses: list[list[float]] = []
    newton_scale = torch.ones(n, device=device)  # Newton only: halved for a row whenever its loss rises
    best_loss = torch.full((n,), float("inf"), device=device)
    best_delta = torch.zeros(n, h0.shape[1], device=device)

    def inserter(rows: torch.Tensor):
        sel_rows, sel_cols = step_prompts.delta_rows[rows], step_prompts.delta_cols[rows]
        owners = step_prompts.delta_owner[rows]
        return lambda h: add_at_positions(h, sel_rows, sel_cols, delta[owners])

    step = 0
    for step in range(params.steps):
        delta.grad = None
        with (TraceDict(sites, edit_output={j: inserter(rows) for j, rows in enumerate(site_rows)}),
              frozen_prefix(prefix_layers, cached_below)):
            hidden = final_hidden(model, step_prompts.batch, cache=cache)
        if cache is not None:
            _restore(cache, prefix_kv)
        nll, kl = target_losses(model, hidden, step_prompts, n, log_p0, full_head=full_head)
        wd = params.weight_decay * delta.norm(dim=1) / h0_norm**2
        loss = nll + params.kl_factor * kl + wd
        losses.append(loss.tolist())
        if opt is None:
            with torch.no_grad():
                better = loss.detach() < best_loss
                newton_scale[~better & ~done] *= 0.5
                best_delta[better] = delta.detach()[better]
                best_loss = torch.where(better, loss.detach(), best_loss)
        done |= loss.detach() < params.early_stop
        if bool(done.all()) or step == params.steps - 1:
            break
        loss.masked_fill(done, 0.0).sum().backward()
        kept = delta.detach()[done].clone()
        if opt is not None:
            opt.step()
        else:  # Newton on L(δ) = L*: rows are independent (each δ only reaches its own prompts' losses)
            with torch.no_grad():
                grad = delta.grad
                gap = (loss.detach() - 0.5 * params.early_stop).clamp_min(0.0)
                step_len = newton_scale * gap / grad.pow(2).sum(dim=1).clamp_min(1e-20)
                delta.sub_(grad * step_len[:, None])
        with torch.no_grad():
            delta[done] = kept  # a converged request keeps its δ (Adam momentum would move it)
            norms = delta.norm(dim=1)
            scale = torch.where(norms > max_norm, max_norm / norms, torch.ones_like(norms))
            delta.mul_(scale[:, None])
    delta = delta.detach() if opt is not None else best_delta
    return ValueResult(values=h0 + delta, h0=h0, delta=delta, losses=losses, steps=step + 1)


def _new_cache(model, spec):
    """A KV cache for the δ-independent columns, where the family's cache can be cut back exactly.

    Gemma3 mixes sliding-window layers whose caches trim themselves; it runs without a KV cache
    (still with the frozen prefix), which costs speed, not correctness.
    """
    if spec.family == "gemma3":
        return None
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def _crop(cache, length: int) -> list:
    """Cut every layer of the cache back to its first `length` columns; return those (keys, values)."""
    saved = []
    for layer in cache.layers:
        if getattr(layer, "is_initialized", False):
            layer.keys = layer.keys[..., :length, :].detach().contiguous()
            layer.values = layer.values[..., :length, :].detach().contiguous()
            saved.append((layer.keys, layer.values))
        else:
            saved.append(None)
    return saved


def _restore(cache, saved: list) -> None:
    """Drop the columns a step appended (and their autograd graph): back to the saved prefix."""
    for layer, kv in zip(cache.layers, saved, strict=True):
        if kv is not None:
            layer.keys, layer.values = kv
