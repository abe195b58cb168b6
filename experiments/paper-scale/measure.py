"""Time and memory of every method on the paper models' exact widths (random weights), per phase.

Each (method, protocol) cell is one `python -m editbench` run (editbench.runner, the path a user
runs) in a fresh process, so its peak RSS / GPU memory is its own; the split per phase comes from
its steps.jsonl and timing.json (editbench.bench.split_run). Before the cells, one process
computes C0 for every layer any method edits (timed: the one-time statistics cost) and leaves it
in the cache the cells read. The one-time linear algebra at the model's d and d_ff (AlphaEdit's
eigendecomposition, PRUNE's SVD of ΔW, MOSE's d×d SVD and W0·C0·W0ᵀ, MEMIT's m×m solve, the
telemetry SVD) is timed on its own (`kernels`), at full size or, with --kernel-sizes, at smaller
sizes and extrapolated by its FLOP count (labelled).

    # CPU, depth-reduced LLaMA3-8B widths, smoke setting (README.md):
    python experiments/paper-scale/measure.py --model llama3-8b --n-layers 9 --smoke --device cpu \
        --out experiments/paper-scale/cpu-llama3-8b
    # GPU, full depth (gpu.sh runs both models):
    python experiments/paper-scale/measure.py --model llama3-8b --device cuda --batch 10 \
        --out experiments/paper-scale/gpu-llama3-8b
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from editbench.bench import in_fresh_process

METHODS = ("mose", "mose_oft", "rome", "memit", "emmet", "rect", "prune", "alphaedit", "ft")


# The layers each method edits, remapped into a depth-reduced model (--n-layers < the model's).
# The paper configs' layers that exceed it (MOSE's candidates up to 23, the released OFT's 19-21 on
# LLaMA3-8B) move to the top of what is kept; per-layer costs do not depend on the index.
def remap_overrides(method: str, n_layers: int | None, one_layer: bool) -> list[str]:
    if n_layers is None:
        return []
    top = n_layers - 1
    out = {"mose": [f"method.candidate_layers=[{','.join(str(x) for x in range(3, n_layers, 2))}]",
                    "method.fixed_layers=[5]"],
           "mose_oft": [f"method.layers=[{top - 2},{top - 1},{top}]"]}.get(method, [])
    if one_layer and method in ("memit", "emmet", "rect", "prune", "alphaedit"):
        out.append(f"method.layers=[{min(8, top)}]")
    if one_layer and method == "mose":
        out += ["method.candidate_layers=[5]", "method.layer_selection=fixed"]
    return out


def smoke_overrides(method: str, value_steps: int) -> list[str]:
    """The smoke setting: value/selection/fine-tuning steps cut to `value_steps`, one short template group."""
    out = ["method.templates.length_params=[[5,2]]"]
    if method in ("mose_oft", "ft"):
        out.append(f"method.steps={value_steps}")
    else:
        out += [f"method.value.steps={value_steps}", "method.value.early_stop=-1"]
    if method == "mose":
        out.append(f"method.selection_steps={value_steps}")
    return out


def c0_warmup(overrides: list[str], methods: list[list[str]], alphaedit: list[str] | None,
              threads: int | None, group_size: int = 3) -> dict:
    """Compute (or read) C0 for every layer, a group of layers per forward pass (memory), timed; then
    AlphaEdit's projectors by the low-rank route when C0 is rank-deficient (`seed_projectors`)."""
    if threads:
        torch.set_num_threads(threads)
    from editbench.build import second_moments
    from editbench.config import compose
    from editbench.data import resolve_data_dir
    from editbench.models.loading import load_model
    from editbench.timing import peak_device_mib, peak_rss_mib

    cfg = compose(overrides)
    t0 = time.perf_counter()
    lm = load_model(cfg.model)
    out: dict = {"load_seconds": time.perf_counter() - t0, "n_tokens": int(cfg.stats.n_tokens),
                 "d": lm.spec.hidden_size, "d_ff": lm.spec.ffn_size, "groups": []}
    stats = second_moments(cfg, lm, resolve_data_dir(cfg.get("data_dir")))
    layers = sorted({layer for o in methods for layer in stat_layers(compose(o), lm, stats)})
    for group in (layers[i : i + group_size] for i in range(0, len(layers), group_size)):
        cached = all(stats.path(layer).is_file() for layer in group)
        t0 = time.perf_counter()
        stats.get(group)
        out["groups"].append({"layers": group, "cached": cached, "seconds": time.perf_counter() - t0})
        stats._memory.clear()  # one group's C0 in memory at a time
    if alphaedit is not None:
        out["projectors"] = seed_projectors(compose(alphaedit), lm, stats)
    out |= {"peak_rss_mib": peak_rss_mib(), "peak_device_mib": peak_device_mib()}
    return out


def stat_layers(cfg, lm, stats) -> list[int]:
    """The layers whose C0 the configured method reads (its editor says so before any edit)."""
    from editbench.locate.context import EditContext
    from editbench.methods import build_editor

    return build_editor(cfg.method.name, EditContext(lm.model, lm.tokenizer, lm.spec, [["{}"]], stats),
                        cfg.method).stat_layers()


def seed_projectors(cfg, lm, stats) -> list[dict]:
    """AlphaEdit's P for a C0 of rank r < m (few tokens) without the m×m eigh (65 min at m = 14336 on
    this CPU, see the kernels table): the range of C0 by a randomized range finder (m²·r), the
    eigenpairs of Qᵀ C0 Q (r×r), P = I − U_big U_bigᵀ. Exact when rank C0 <= r: the directions
    outside the range have eigenvalue 0 < τ. Written where AlphaEdit's cache looks for it."""
    from baselines.alphaedit import PROJECTORS
    from editbench.locate.context import EditContext
    from editbench.methods import build_editor

    ctx = EditContext(lm.model, lm.tokenizer, lm.spec, [["{}"]], stats)
    editor = build_editor("alphaedit", ctx, cfg.method)
    rank = int(cfg.stats.n_tokens) + 64
    out = []
    for layer in editor.layers:
        stem, key = f"P-layer{layer}", editor.projector_key(layer)
        if PROJECTORS.path(stem, key).is_file():
            continue
        t0 = time.perf_counter()
        C0 = stats(layer)
        m = C0.shape[0]
        gen = torch.Generator(device=C0.device).manual_seed(0)
        Q, _ = torch.linalg.qr(C0 @ torch.randn(m, min(rank, m), dtype=C0.dtype, device=C0.device, generator=gen))
        S, V = torch.linalg.eigh(Q.T @ C0 @ Q)
        big = Q @ V[:, S >= editor.threshold]
        P = torch.eye(m, dtype=torch.float64, device=C0.device) - big @ big.T
        PROJECTORS.save(stem, key, P.float(), {"threshold": repr(editor.threshold), "stats_key": stats.key(layer),
                                               "route": f"low-rank r={rank} (experiments/paper-scale/measure.py)"})
        out.append({"layer": layer, "kept": int(big.shape[1]), "seconds": time.perf_counter() - t0})
        stats._memory.clear()
    return out


def method_cells(overrides: list[str], single: int, batch: int, threads: int | None) -> dict:
    """One method on one loaded model: `single` sequential edits, then (weights restored, a fresh
    editor) one step of `batch` edits. Seconds per step by phase, telemetry (norms), scoring, peak RSS."""
    if threads:
        torch.set_num_threads(threads)
    from editbench.api import Session
    from editbench.loop.step import phase_split
    from editbench.telemetry import Telemetry
    from editbench.timing import clock, peak_device_mib, peak_rss_mib, take

    t0 = clock()
    session = Session(overrides)
    out: dict = {"load_seconds": clock() - t0, "cells": {}}
    requests = session.requests(num_edits=max(single, batch))
    session.track(requests)  # the pre-edit snapshot of every request (scoring's baseline)
    for name, n, size in (("single", single, 1), (f"batch{batch}", batch, batch)):
        for layer, W0 in session.originals.items():  # the second cell starts from the unedited model
            session.lm.spec.set_weight(session.model, layer, W0)
        t0 = clock()
        editor = session.editor()  # templates (first time), C0 / projectors read, state allocated
        cell: dict = {"build_seconds": clock() - t0, "steps": []}
        telemetry = Telemetry(session.lm.spec, session.model, session.originals, spectra=False)
        for start in range(0, n, size):
            take()
            t0 = clock()
            editor.edit(requests[start : start + size])
            seconds = clock() - t0
            t1 = clock()
            telemetry()
            cell["steps"].append({"edits": len(requests[start : start + size]), "seconds": seconds,
                                  "phases": phase_split(seconds, take()), "telemetry": clock() - t1})
        t0 = clock()
        editor.finalize()
        cell["finalize_seconds"] = clock() - t0
        t0 = clock()
        session.score(requests[:n])
        cell["scoring_seconds_per_edit"] = (clock() - t0) / n
        cell["peak_rss_mib"], cell["peak_device_mib"] = peak_rss_mib(), peak_device_mib()
        out["cells"][name] = cell
    return out


def kernels(d: int, m: int, device: str, sizes: list[int] | None, threads: int | None) -> list[dict]:
    """The one-time / per-step dense linear algebra at (d, m), timed (at `sizes` and extrapolated when given)."""
    if threads:
        torch.set_num_threads(threads)
    from editbench.timing import clock

    f64 = torch.float64

    def spd(n: int, dtype=f64) -> torch.Tensor:
        a = torch.randn(n, n // 4 + 8, dtype=dtype, device=device)
        return a @ a.T / a.shape[1] + 1e-3 * torch.eye(n, dtype=dtype, device=device)

    def memit_solve(n: int, d_n: int):
        A, B = spd(n), torch.randn(n, 8, dtype=f64, device=device)
        return lambda: torch.linalg.solve(A, B)

    def alphaedit_step(n: int, d_n: int):
        A, B = spd(n, torch.float32), spd(n, torch.float32)
        return lambda: torch.linalg.solve(A @ B + torch.eye(n, device=device), A[:, :8])

    def eigh(n: int, d_n: int):
        A = spd(n)
        return lambda: torch.linalg.eigh(A)

    def mose_svd(n: int, d_n: int):
        A = torch.randn(d_n, d_n, dtype=f64, device=device)
        return lambda: torch.linalg.svd(A)

    def mose_gram(n: int, d_n: int):
        W, C = torch.randn(d_n, n, dtype=f64, device=device), spd(n)
        return lambda: W @ C @ W.T

    def prune_svd(n: int, d_n: int):
        A = torch.randn(d_n, n, dtype=f64, device=device)
        return lambda: torch.linalg.svd(A, full_matrices=False)

    def bf16_gemm(n: int, d_n: int):
        x = torch.randn(256, d_n, dtype=torch.bfloat16, device=device)
        w = torch.randn(d_n, n, dtype=torch.bfloat16, device=device)
        return lambda: [x @ w for _ in range(4)]

    # name, FLOPs as a function of (d, m), the work at width n (d scaled with it)
    cases = [
        ("bf16 GEMM 256×d×m ×4 (the model passes: keys, values, scoring)", lambda d, m: 4 * 2 * 256 * d * m, bf16_gemm),
        ("MEMIT-family solve m×m (float64, per layer and step)", lambda d, m: 2 / 3 * m**3, memit_solve),
        ("AlphaEdit P·(KKᵀ+C_p) + solve (float32, per layer and step)", lambda d, m: 2 * m**3 + 2 / 3 * m**3,
         alphaedit_step),
        ("AlphaEdit eigh of C0 m×m (float64, once per layer)", lambda d, m: 9 * m**3, eigh),
        ("MOSE svd of M d×d (float64, per layer and step)", lambda d, m: 22 * d**3, mose_svd),
        ("MOSE W0·C0·W0ᵀ (float64, once per layer)", lambda d, m: 2 * d * m * m + 2 * d * d * m, mose_gram),
        ("PRUNE / telemetry svd d×m (float64, once / per step)", lambda d, m: 4 * m * d * d + 22 * d**3, prune_svd),
    ]
    out = []
    for name, flops, make in cases:
        for n in sizes or [m]:
            d_n = max(8, round(n * d / m))
            run = make(n, d_n)
            t0 = clock()
            run()
            seconds = clock() - t0
            work = flops(d_n, n)
            row = {"kernel": name, "d": d_n, "m": n, "seconds": seconds, "gflop": work / 1e9,
                   "gflop_per_s": work / seconds / 1e9}
            if n != m:
                row["projected seconds at paper width"] = seconds * flops(d, m) / work
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="llama3-8b")
    p.add_argument("--n-layers", type=int, default=None, help="depth-reduced variant (widths kept)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--batch", type=int, default=4, help="the batch cell's batch size")
    p.add_argument("--single", type=int, default=2, help="the sequential cell's edits")
    p.add_argument("--smoke", action="store_true", help="value steps cut (--value-steps), short templates")
    p.add_argument("--value-steps", type=int, default=2)
    p.add_argument("--one-layer", action="store_true",
                   help="MEMIT-family methods edit one layer (per-layer phases scale with the layer count)")
    p.add_argument("--n-tokens", type=int, default=20000, help="C0's token count (stats.n_tokens)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--kernel-sizes", default="", help="comma-separated m for extrapolated kernels ('' = paper size)")
    p.add_argument("--skip-kernels", action="store_true")
    p.add_argument("--low-rank-projector", action="store_true",
                   help="AlphaEdit's P from C0's range (rank-deficient C0 of few tokens) instead of the m×m eigh")
    p.add_argument("--mose-candidates", default=None,
                   help="MOSE's candidate layers, e.g. 5,7,9 (every candidate and neighbour needs a C0 on disk: "
                        "the paper configs' 23 layers of LLaMA3-8B are 37 GB)")
    p.add_argument("--set", action="append", default=[], help="extra Hydra override")
    p.add_argument("--update", action="store_true",
                   help="re-measure only --methods into an existing OUT/report.json, keeping its other cells, C0 and "
                        "kernels (e.g. a method fixed after the first run); the command is recorded under 'updates'")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    from editbench.shapes import shape_names

    random = ["model.source=random"] if args.model in shape_names() else []  # else the model as configured
    common = [f"model={args.model}", *random, f"model.device={args.device}", f"model.dtype={args.dtype}",
              "logger.wandb.mode=disabled", "telemetry_spectra=off", "checkpoint_every=0", "dataset=counterfact",
              f"stats.n_tokens={args.n_tokens}", *args.set]
    common += [f"model.n_layers={args.n_layers}"] if args.n_layers else []
    common += [f"threads={args.threads}"] if args.threads else []
    command = "python experiments/paper-scale/measure.py " + " ".join(argv or sys.argv[1:])
    from editbench.bench import machine_facts

    if args.update and (out / "report.json").is_file():
        report = json.loads((out / "report.json").read_text())
        report["cells"] = [c for c in report["cells"] if c["method"] not in methods]
        report.setdefault("updates", []).append({"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                 "methods": methods, "machine": machine_facts()})
    else:
        report = {"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "cells": [],
                  "n_layers": args.n_layers, "one_layer": args.one_layer, "model": args.model, "smoke": args.smoke,
                  "value_steps": args.value_steps if args.smoke else None,
                  "machine": machine_facts()}

    def per_method(method: str) -> list[str]:
        extra = remap_overrides(method, args.n_layers, args.one_layer)
        if method == "mose" and args.mose_candidates:
            extra.append(f"method.candidate_layers=[{args.mose_candidates}]")
        return [*common, f"method={method}", *(smoke_overrides(method, args.value_steps) if args.smoke else []),
                *extra]

    needs_c0 = [m for m in methods if m not in ("mose_oft", "ft")]
    if needs_c0 and not (args.update and report.get("c0")):
        report["c0"] = in_fresh_process(c0_warmup, per_method(needs_c0[0]), [per_method(m) for m in needs_c0],
                                        per_method("alphaedit") if "alphaedit" in methods and args.low_rank_projector
                                        else None, args.threads)
        print("C0:", json.dumps(report["c0"]), flush=True)
    save(report, out)
    for method in methods:
        t0 = time.perf_counter()
        try:
            result = in_fresh_process(method_cells, per_method(method), args.single, args.batch, args.threads)
            cell = {"method": method, "ok": True, **result}
        except Exception as e:  # a failure is a result here: recorded, and the next method runs
            cell = {"method": method, "ok": False, "error": f"{type(e).__name__}: {e}"}
        cell["process_seconds"] = time.perf_counter() - t0
        report["cells"].append(cell)
        report["cells"].sort(key=lambda c: METHODS.index(c["method"]) if c["method"] in METHODS else len(METHODS))
        print(method, "ok" if cell["ok"] else cell["error"], f"{cell['process_seconds']:.0f} s", flush=True)
        save(report, out)
    if not args.skip_kernels and random and not (args.update and report.get("kernels")):
        from editbench.shapes import shape_config

        cfg = shape_config(args.model)
        sizes = [int(s) for s in args.kernel_sizes.split(",") if s]
        report["kernels"] = in_fresh_process(kernels, cfg["hidden_size"], cfg["intermediate_size"], args.device,
                                             sizes or None, args.threads)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save(report, out)


def table(report: dict) -> pd.DataFrame:
    """One row per (method, cell): step 1 and the later steps apart (step 1 pays the lazy one-time work)."""
    rows = []
    for c in report["cells"]:
        if not c["ok"]:
            rows.append({"method": c["method"], "error": c["error"]})
            continue
        for name, cell in c["cells"].items():
            steps = cell["steps"]
            row = {"method": c["method"], "cell": name, "load s": c["load_seconds"], "build s": cell["build_seconds"]}
            for label, chosen in (("step1", steps[:1]), ("later", steps[1:])):
                if not chosen:
                    continue
                n = sum(s["edits"] for s in chosen)
                for ph in ("keys", "values", "solve"):
                    row[f"{label} {ph} s/edit"] = sum(s["phases"][ph] for s in chosen) / n
                row[f"{label} total s/edit"] = sum(s["seconds"] for s in chosen) / n
            row["telemetry s/step"] = sum(s["telemetry"] for s in steps) / len(steps)
            row["finalize s"] = cell["finalize_seconds"]
            row["scoring s/edit"] = cell["scoring_seconds_per_edit"]
            row["peak RSS MiB"] = cell["peak_rss_mib"]
            if cell.get("peak_device_mib") is not None:
                row["peak GPU MiB"] = cell["peak_device_mib"]
            rows.append(row)
    return pd.DataFrame(rows)


def save(report: dict, out: Path) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    parts = [f"# Paper-scale measurement ({report['started']})", "", f"command: `{report['command']}`", "",
             "```", json.dumps(report["machine"], indent=1), "```", ""]
    for update in report.get("updates", []):
        parts += [f"re-measured {', '.join(update['methods'])} ({update['started']}): `{update['command']}`", ""]
    if report.get("c0"):
        c0 = report["c0"]
        parts += ["## C0 and projectors (one-time)", "", f"model load {c0['load_seconds']:.0f} s, {c0['n_tokens']} tokens, "
                  f"d {c0['d']}, d_ff {c0['d_ff']}, peak RSS {c0['peak_rss_mib']:.0f} MiB", "",
                  pd.DataFrame(c0["groups"]).to_markdown(index=False, floatfmt=".1f"), ""]
        if c0.get("projectors"):
            parts += [pd.DataFrame(c0["projectors"]).to_markdown(index=False, floatfmt=".1f"), ""]
    if report["cells"]:
        df = table(report)
        df.to_csv(out / "methods.csv", index=False)
        parts += ["## Per method and cell (seconds per edit by phase)", "",
                  df.to_markdown(index=False, floatfmt=".2f"), ""]
    if report.get("kernels"):
        kdf = pd.DataFrame(report["kernels"])
        kdf.to_csv(out / "kernels.csv", index=False)
        parts += ["## Dense linear algebra at the model's widths", "", kdf.to_markdown(index=False, floatfmt=".2f"), ""]
    (out / "report.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
