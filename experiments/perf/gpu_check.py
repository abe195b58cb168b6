"""Does the optimised value optimisation equal the straightforward one on CUDA? (issue 4)

Run on a lent GPU machine (see gpu.sh for the environment): tiny models at both sites, then
SmolLM2's architecture with random weights, one speed-up at a time, and CPU against CUDA.
"""

import sys

import torch

sys.path[:0] = ["src", "."]
from editbench.bench import value_variant  # noqa: E402
from editbench.data.records import EditRequest  # noqa: E402
from editbench.locate.values import ValueParams  # noqa: E402
from editbench.models.loading import load_model  # noqa: E402
from tests.conftest import tiny_cfg  # noqa: E402

REQS = [EditRequest("0", "The capital of {} is", "France", "Berlin", "Paris"),
        EditRequest("1", "The mother tongue of {} is", "Danielle Darrieux", "English", "French")]
TEMPLATES = ["{}", "A somewhat longer prefix than the other. {}"]
OFF = {"prefix": False, "head_at_positions": False, "frozen": False, "joint": False}


def rel(a, b):
    return float(((a.cpu() - b.cpu()).norm(dim=1) / b.cpu().norm(dim=1)).max())


def compare(lm, layer, site, params, label):
    ref, _ = value_variant(lm, REQS, TEMPLATES, layer, site, params, **OFF)
    for flag in ("prefix", "head_at_positions", "frozen", "joint"):
        one, _ = value_variant(lm, REQS, TEMPLATES, layer, site, params, **{**OFF, flag: True})
        print(f"{label} {site} only {flag}: rel diff {rel(one, ref):.2e}")
    all_on, _ = value_variant(lm, REQS, TEMPLATES, layer, site, params)
    print(f"{label} {site} all: rel diff {rel(all_on, ref):.2e}")
    return all_on


params = ValueParams(steps=8)
for arch in ("llama", "gpt2"):
    lm = load_model({**tiny_cfg(arch), "device": "cuda"})
    for site in ("residual", "mlp_out"):
        compare(lm, 2, site, params, f"tiny-{arch} cuda")
path = sys.argv[1] if len(sys.argv) > 1 else ".dev/model/smollm2"
base = {"name": "random", "source": "random", "path": path, "dtype": "float32", "tiny": {"seed": 0}}
gpu = load_model({**base, "device": "cuda"})
v_gpu = compare(gpu, 4, "residual", ValueParams(steps=4), "smollm2-random cuda")
cpu = load_model({**base, "device": "cpu"})
v_cpu, _ = value_variant(cpu, REQS, TEMPLATES, 4, "residual", ValueParams(steps=4))
print(f"smollm2-random all: cuda vs cpu rel diff {rel(v_gpu, v_cpu):.2e}")
print("matmul fp32 precision:", torch.get_float32_matmul_precision())
