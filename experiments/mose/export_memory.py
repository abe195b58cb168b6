"""Export one real linear memory for `capacity.py --real` (issue 20): W0, C0 and real edit keys.

From the model as the project loads it (`editbench.api.load`, the default config, so `stats` is the
CPU-scale WikiText-2 statistic of conf/config.yaml and its cache key is the one every run uses):

  W0    the down projection of `--layer`, as stored: (d, m) = (out, in), so W k is the layer's output
        (capacity.py's orientation; the editors' ΔW is (d, m) too)
  C0    `SecondMoments(layer)`: the *mean* E[k kᵀ] over the statistics tokens, the C0 that
        MEMIT's λ·C0 (baselines/memit.py) and MOSE's λ·W C0 Wᵀ (editors/mose.py) multiply, so λ in
        the simulator means what it means in the LM; AlphaEdit's τ = 0.02 is absolute on it
  K     real keys k*: the template-averaged down-projection inputs at the subject's last token of the
        first `--n-keys` CounterFact requests (`locate.reads.layer_keys`, MEMIT's compute_ks
        weighting, the keys MEMIT / AlphaEdit / MOSE solve with), on the unedited model

  PYTHONPATH=src:. python experiments/mose/export_memory.py --layer 4 --n-keys 600 \\
      --out experiments/mose/capacity-real/smollm2-layer4.safetensors

Refuses to compute C0 afresh unless `--allow-compute` (the point is the cached statistic).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from editbench.api import load
from editbench.build import context_templates
from editbench.io import save_tensors
from editbench.locate.context import EditContext
from editbench.locate.reads import layer_keys


def export(layer: int, n_keys: int, out: Path, model: str = "smollm2-135m", allow_compute: bool = False,
           overrides: tuple[str, ...] = (), chunk: int = 100) -> dict:
    """Write W0 (d×m), C0 (m×m, mean second moment) and K (n_keys×m) to `out`; returns the metadata."""
    session = load(model, overrides=["dataset=counterfact", *overrides])
    cached = session.stats.path(layer).is_file()
    if not cached and not allow_compute:
        raise FileNotFoundError(f"no cached C0 at {session.stats.path(layer)}; compute it with a run first or pass "
                                "--allow-compute")
    lm = session.lm
    W0 = lm.spec.down_proj(lm.model, layer).weight.detach().double().clone()  # (d, m): out × in
    C0 = session.stats(layer).double()
    if W0.shape[1] != C0.shape[0]:
        raise ValueError(f"W0 {tuple(W0.shape)} and C0 {tuple(C0.shape)} disagree: the down projection must be (d, m)")
    tensors = {"W0": W0, "C0": C0}
    if n_keys:
        ctx = EditContext(lm.model, lm.tokenizer, lm.spec, context_templates(session.cfg, lm), session.stats)
        requests = session.requests(num_edits=n_keys, offset=0)
        # chunks: read_at_subject pads all (request, template) prompts of a call into one batch
        tensors["K"] = torch.cat([layer_keys(ctx, requests[i : i + chunk], layer).double()
                                  for i in range(0, len(requests), chunk)])
    meta = {"model": model, "layer": layer, "fingerprint": lm.fingerprint, "c0_cache": str(session.stats.path(layer)),
            "c0_was_cached": cached, "stats": dict(session.cfg.stats), "n_keys": n_keys,
            "d": W0.shape[0], "m": W0.shape[1]}
    save_tensors(tensors, out, {"meta": json.dumps(meta)})
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layer", type=int, default=4)
    ap.add_argument("--n-keys", type=int, default=600, help="real CounterFact keys (0: none)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--allow-compute", action="store_true", help="compute C0 if it is not cached")
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(export(a.layer, a.n_keys, a.out, a.model, a.allow_compute), indent=1))


if __name__ == "__main__":
    main()
