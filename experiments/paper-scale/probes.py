"""The ad hoc probes behind `cpu-llama3-8b/probes.md` (issue 21), as a command: dense float64 kernels at
n = 2048 / 4096 (extrapolated in the README to m = 14336), the float64 SVD of a 4096×14336 matrix
(telemetry's per-step cost; it did not finish in 15 min on the loaded CPU), and the load and one forward of
the 9-block LLaMA3-8B shape in bf16. measure.py's `--kernel-sizes` times the same kernels per method run.

  PYTHONPATH=src:. python experiments/paper-scale/probes.py [--skip-svd] [--skip-model] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def kernels(skip_svd: bool) -> None:
    for n in (2048, 4096):
        A = torch.randn(n, n, dtype=torch.float64)
        A = A @ A.T + n * torch.eye(n, dtype=torch.float64)  # SPD, like λC0 + K Kᵀ
        B = torch.randn(n, 8, dtype=torch.float64)
        A32 = A.float()
        print(n, "solve64", seconds(torch.linalg.solve, A, B), "eigh64", seconds(torch.linalg.eigh, A),
              "mm32", seconds(torch.matmul, A32, A32), flush=True)
    if not skip_svd:
        W = torch.randn(4096, 14336, dtype=torch.float64)
        print("svdvals 4096x14336 f64", seconds(lambda: torch.linalg.svdvals(W)), flush=True)
    x, w = torch.randn(256, 4096, dtype=torch.bfloat16), torch.randn(4096, 14336, dtype=torch.bfloat16)
    print("bf16 mm 256x4096x14336", seconds(lambda: x @ w), "f32", seconds(lambda: x.float() @ w.float()), flush=True)


def load_and_forward() -> None:
    from editbench.models.loading import load_model

    start = time.time()
    lm = load_model({"name": "llama3-8b", "source": "random", "path": None, "dtype": "bfloat16", "device": "cpu",
                     "n_layers": 9})
    print("load", time.time() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "GiB", flush=True)
    ids = lm.tokenizer(["The capital of France is Paris, and the capital of"] * 8, return_tensors="pt")
    print(ids.input_ids.shape)
    with torch.no_grad():
        print("fwd 8 seqs", seconds(lambda: lm.model(**ids)), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-svd", action="store_true", help="leave out the 4096×14336 float64 SVD (minutes on a CPU)")
    ap.add_argument("--skip-model", action="store_true", help="leave out the 9-block LLaMA3-8B load and forward")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kernels(args.skip_svd)
    if not args.skip_model:
        load_and_forward()


if __name__ == "__main__":
    main()
