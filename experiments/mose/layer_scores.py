"""MOSE's layer scores (eq. 22) before and after issue 26, on the unedited model.

For the first N CounterFact *train*-split requests (never the evaluated split, D5), every candidate
layer's ‖δ_l‖ (eq. 22's numerator: the change of layer l's MLP output that alone makes the edit
land), ‖W_l‖₂·‖k_l‖ (its denominator) and the chosen l* = argmin score, under two rules:
  before: selection_optimizer=adam,   selection_steps=5  (4 Adam updates of length ≈ lr·√d each)
  after:  selection_optimizer=newton, selection_steps=25 (to value.early_stop, the default now)
The selection is a function of the unedited model, so no edit is made. Writes into --out:
  scores.csv  one row per (rule, request, layer)
  report.md   chosen-layer histogram, per-layer mean/median ‖δ_l‖, and how much the norms decide
  report.png  the histogram and the per-layer median ‖δ_l‖
Run from the repository root (about 10-20 minutes on one thread):
  OMP_NUM_THREADS=1 PYTHONPATH=src:. EDITBENCH_DATA=../shared/data .venv/bin/python \
      experiments/mose/layer_scores.py --n 50 --out experiments/mose/layer_scores
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from editbench.config import compose
from editbench.data import load_requests, resolve_data_dir
from editbench.locate.context import EditContext
from editbench.methods import build_editor
from editbench.models.loading import load_model

RULES = {
    "before": ["method.selection_optimizer=adam", "method.selection_steps=5"],
    "after": [],  # the configured default
}


def score_rule(lm, overrides: list[str], requests, chunk: int) -> dict[str, np.ndarray]:
    cfg = compose(["model=smollm2-135m", "method=mose", "dataset.split=train", *overrides])
    editor = build_editor("mose", EditContext(lm.model, lm.tokenizer, lm.spec, [["{}"]]), cfg.method)
    parts: dict[str, list] = {}
    for start in range(0, len(requests), chunk):
        out = editor.layer_score_parts(requests[start : start + chunk])
        for key in ("delta_norm", "denominator", "score", "loss_final"):
            parts.setdefault(key, []).append(out[key].numpy())
        parts.setdefault("steps", []).append(int(out["steps"]))
    result = {k: np.concatenate(v) for k, v in parts.items() if k != "steps"}
    result["steps"] = np.array(parts["steps"])
    result["cands"] = np.array(editor.candidates())
    result["early_stop"] = float(cfg.method.value.early_stop)
    result["config"] = f"optimizer={editor.selection_optimizer}, steps={int(cfg.method.selection_steps)}"
    return result


def summarise(res: dict[str, np.ndarray]) -> dict:
    cands = res["cands"]
    chosen = cands[res["score"].argmin(axis=1)]
    by_norms = cands[res["denominator"].argmax(axis=1)]  # the choice if ‖δ_l‖ were the same on every layer
    log_num, log_den = np.log(res["delta_norm"]), np.log(res["denominator"])
    return {
        "chosen": chosen,
        "hist": {int(c): int((chosen == c).sum()) for c in cands},
        "top": float((chosen == cands.max()).mean()),
        "agree_norms": float((chosen == by_norms).mean()),
        # spread over layers within a request (std of the log), averaged over requests: which factor moves
        "spread_num": float(log_num.std(axis=1).mean()),
        "spread_den": float(log_den.std(axis=1).mean()),
        "converged": float((res["loss_final"] < res["early_stop"]).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("experiments/mose/layer_scores"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = compose(["model=smollm2-135m", "method=mose", "dataset.split=train"])
    lm = load_model(base.model)
    requests = load_requests(base.dataset, resolve_data_dir(base.get("data_dir")), num_edits=args.n, offset=0,
                             seed=int(base.seed))
    results, seconds = {}, {}
    for rule, overrides in RULES.items():
        t0 = time.perf_counter()
        results[rule] = score_rule(lm, overrides, requests, args.chunk)
        seconds[rule] = time.perf_counter() - t0
        print(f"{rule}: {seconds[rule]:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out, requests, results, {r: summarise(v) for r, v in results.items()}, seconds)


def write(out: Path, requests, results: dict, summ: dict, seconds: dict) -> None:
    cands = results["after"]["cands"]
    with open(out / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rule", "case_id", "layer", "delta_norm", "w_spectral_x_key_norm", "score", "loss_final",
                    "chosen"])
        for rule, res in results.items():
            for i, req in enumerate(requests):
                for j, layer in enumerate(cands):
                    w.writerow([rule, req.case_id, int(layer), f"{res['delta_norm'][i, j]:.4f}",
                                f"{res['denominator'][i, j]:.4f}", f"{res['score'][i, j]:.6g}",
                                f"{res['loss_final'][i, j]:.4f}", int(summ[rule]["chosen"][i] == layer)])
    n = len(requests)
    lines = [f"# MOSE layer scores (eq. 22) before and after issue 26: SmolLM2-135M, {n} CounterFact train-split "
             "requests, unedited model", "",
             "Written by `experiments/mose/layer_scores.py`; one row per (rule, request, layer) in `scores.csv`.", "",
             "| | rule | time (s) |", "|---|---|---|"]
    lines += [f"| {rule} | {results[rule]['config']} | {seconds[rule]:.0f} |" for rule in results]
    lines += ["", "## Chosen layer l* (requests per layer)", "",
              "| rule | " + " | ".join(str(int(c)) for c in cands) + " | at top of window | = argmax ‖W‖₂‖k‖ |",
              "|---|" + "---|" * (len(cands) + 2)]
    for rule, s in summ.items():
        lines.append(f"| {rule} | " + " | ".join(str(s["hist"][int(c)]) for c in cands)
                     + f" | {100 * s['top']:.0f}% | {100 * s['agree_norms']:.0f}% |")
    lines += ["", "`= argmax ‖W‖₂‖k‖`: how often l* is the layer the denominator alone would pick (what a "
              "numerator that is the same on every layer gives).", "",
              "## ‖δ_l‖ per candidate layer (mean / median over requests), and the denominator ‖W_l‖₂·‖k_l‖", "",
              "| layer | before mean | before median | after mean | after median | ‖W‖₂‖k‖ median |",
              "|---|---|---|---|---|---|"]
    b, a = results["before"], results["after"]
    for j, layer in enumerate(cands):
        lines.append(f"| {int(layer)} | {b['delta_norm'][:, j].mean():.1f} | {np.median(b['delta_norm'][:, j]):.1f} "
                     f"| {a['delta_norm'][:, j].mean():.1f} | {np.median(a['delta_norm'][:, j]):.1f} "
                     f"| {np.median(a['denominator'][:, j]):.1f} |")
    lines += ["", "## Which factor moves the score",  "",
              "Std over candidate layers of log ‖δ_l‖ and of log(‖W_l‖₂‖k_l‖), mean over requests (the larger one "
              "decides the argmin); share of (request, layer) pairs whose δ reached value.early_stop.", "",
              "| rule | spread of log ‖δ_l‖ | spread of log ‖W‖₂‖k‖ | converged |", "|---|---|---|---|"]
    for rule, s in summ.items():
        lines.append(f"| {rule} | {s['spread_num']:.3f} | {s['spread_den']:.3f} | {100 * s['converged']:.0f}% |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot(out, cands, results, summ)


def plot(out: Path, cands, results: dict, summ: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.4
    for k, rule in enumerate(results):
        ax1.bar(cands + (k - 0.5) * width, [summ[rule]["hist"][int(c)] for c in cands], width, label=rule)
        ax2.plot(cands, np.median(results[rule]["delta_norm"], axis=0), marker="o", label=f"{rule}: median ‖δ_l‖")
    ax1.set(xlabel="candidate layer", ylabel="requests with l* here", title="chosen layer (eq. 22)")
    ax2.set(xlabel="candidate layer", ylabel="‖δ_l‖ (MLP output)", title="eq. 22 numerator")
    ax1.legend()
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=120)


if __name__ == "__main__":
    main()
