"""Read hidden vectors at the subject's last token: keys k* and current residuals (§1.2)."""

from __future__ import annotations

import torch

from editbench.data.records import EditRequest
from editbench.locate.forward import final_hidden
from editbench.locate.prompts import encode_with_subject, pad_id, pad_right
from editbench.locate.templates import flat
from editbench.locate.trace import Site, TraceDict, site_module
from editbench.timing import timed


@timed("keys")
@torch.no_grad()
def read_at_subject(ctx, requests: list[EditRequest], templates: list[str], sites: list[Site]) -> dict:
    """Vectors at the subject's last token of every (request, template) prompt.

    Returns {site: tensor (n_requests, n_templates, width)} in float32. "key" reads the input of
    the edited down projection; "residual" the decoder block's output; "mlp_out" the MLP output.
    One forward pass serves all sites.
    """
    encoded = [encode_with_subject(ctx.tokenizer, t, r.prompt, r.subject) for r in requests for t in templates]
    batch = pad_right([e.ids for e in encoded], pad_id(ctx.tokenizer), ctx.device)
    rows = torch.arange(len(encoded), device=ctx.device)
    cols = torch.tensor([e.subject_last for e in encoded], device=ctx.device)
    modules = {site: site_module(ctx.spec, ctx.model, *site) for site in sites}
    with TraceDict(modules, retain_input={s: s[1] == "key" for s in sites},
                   retain_output={s: s[1] != "key" for s in sites}) as traces:
        final_hidden(ctx.model, batch)
    out = {}
    for site, trace in traces.items():
        hidden = trace.input if site[1] == "key" else trace.output
        vecs = hidden[rows, cols].float()
        out[site] = vecs.reshape(len(requests), len(templates), -1)
    return out


def group_mean(per_template: torch.Tensor, groups: list[list[str]]) -> torch.Tensor:
    """MEMIT's compute_ks weighting: mean within each template group, then over groups."""
    means, start = [], 0
    for group in groups:
        means.append(per_template[:, start : start + len(group)].mean(dim=1))
        start += len(group)
    return torch.stack(means).mean(dim=0)


def layer_keys(ctx, requests: list[EditRequest], layer: int, z_layer: int | None = None):
    """Template-averaged keys K (n, m) at `layer`, and, if asked, the bare-prompt residual at z_layer.

    The keys are read on the model as it stands, so a caller that updates lower layers first
    gets keys that reflect those updates (MEMIT's layer-by-layer spread, D2).
    """
    sites: list[Site] = [(layer, "key")] + ([(z_layer, "residual")] if z_layer is not None else [])
    reads = read_at_subject(ctx, requests, flat(ctx.templates), sites)
    keys = group_mean(reads[(layer, "key")], ctx.templates)
    if z_layer is None:
        return keys
    return keys, reads[(z_layer, "residual")][:, 0]
