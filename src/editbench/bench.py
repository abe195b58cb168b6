"""`make bench` (python -m editbench.bench): where an edit's time goes (issue 4).

Sections, printed as tables and written to <out>/bench.json and <out>/bench.md:
  machine  threads, torch, CPU and GPU
  matmul   the matmul rate measured in this run: a square GEMM and one shaped like an FFN layer
  methods  per method, per edit: keys, values (the value optimisation), solve (the method's own
           rest), telemetry, scoring; peak RSS (and peak GPU memory)
  scaling  MOSE's time per edit vs edits done so far, and vs batch size
  values   the value optimisation: the straightforward implementation, each speed-up on its own,
           all of them; FLOPs counted by torch's FlopCounterMode, the FLOP floor = FLOPs of the
           optimised path / the best measured matmul rate, and wall time / floor
Every run happens in a fresh process, so each peak RSS is that run's own.

    python -m editbench.bench                                   # SmolLM2 on this CPU
    python -m editbench.bench --sections values --values-requests 1
    python -m editbench.bench --from-run outputs/.../           # the split of a finished run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from editbench.timing import clock

PHASES = ("keys", "values", "solve", "telemetry", "scoring")


# --- machine and matmul rate ------------------------------------------------------------------


def machine_facts() -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    facts = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu,
             "cpu_count": os.cpu_count(), "python": platform.python_version(), "gpu": None}
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def matmul_rate(n: int, k: int, m: int, device: str, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """FLOP/s of (n×k)@(k×m) products, repeated for about `seconds` after a warm-up."""
    a = torch.randn(n, k, device=device, dtype=dtype)
    b = torch.randn(k, m, device=device, dtype=dtype)
    a @ b
    reps, start = 0, clock()
    while True:
        a @ b
        reps += 1
        if reps % 4 == 0:
            elapsed = clock() - start
            if elapsed >= seconds:
                return 2.0 * n * k * m * reps / elapsed


def matmul_rates(device: str, dtype: torch.dtype, d: int, ffn: int, tokens: int = 256) -> dict:
    square = 1024 if device == "cpu" else 8192
    rates = {f"square_{square}": matmul_rate(square, square, square, device, dtype),
             f"ffn_{tokens}x{d}x{ffn}": matmul_rate(tokens, d, ffn, device, dtype)}
    return {"gflops": {k: v / 1e9 for k, v in rates.items()}, "best_gflops": max(rates.values()) / 1e9}


# --- one editing run, and the split of its time -----------------------------------------------


def split_run(run_dir: Path) -> dict:
    """Per-edit seconds by phase of a finished run, from its steps.jsonl and summary.json."""
    from editbench.io import read_jsonl

    run_dir = Path(run_dir)
    steps = [s for s in read_jsonl(run_dir / "steps.jsonl") if isinstance(s.get("step"), int)]
    summary_path = run_dir / "summary.json"  # absent when the run was stopped before its end
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {**steps[0], "stopped": True}
    n_edits = sum(len(s["case_ids"]) for s in steps)
    total = {p: 0.0 for p in PHASES}
    series = []
    done = 0
    for s in steps:
        phases = s.get("phases") or {"solve": s["edit_seconds"]}
        for p in ("keys", "values", "solve"):
            total[p] += phases.get(p, 0.0)
        total["telemetry"] += s.get("telemetry_seconds", 0.0)
        done += len(s["case_ids"])
        series.append({"edits_done": done, "seconds": s["edit_seconds"] + s.get("telemetry_seconds", 0.0),
                       "edits": len(s["case_ids"])})
    timing_path = run_dir / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    total["scoring"] = timing.get("scoring_seconds", 0.0)
    per_edit = {p: v / n_edits for p, v in total.items()}
    per_edit["total"] = sum(per_edit.values())
    return {"method": summary["method"], "model": summary["model"], "batch_size": summary["batch_size"],
            "edits": n_edits, "per_edit_seconds": per_edit, "series": series,
            "wall_seconds": sum(total.values()), "peak_rss_mib": timing.get("peak_rss_mib"),
            "peak_device_mib": timing.get("peak_device_mib"),
            "scores": {k: summary.get(k) for k in ("reliability", "generalization", "locality")}}


def run_method(overrides: list[str], run_dir: str, threads: int | None) -> dict:
    """One editing run in this process (meant for a fresh worker), then its split."""
    if threads:
        torch.set_num_threads(threads)
    from editbench.config import compose
    from editbench.runner import run

    run(compose(overrides), Path(run_dir))
    return split_run(Path(run_dir))


def in_fresh_process(fn: Callable, *args: Any) -> Any:
    """fn(*args) in a new spawned process (its own peak RSS, no shared caches)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# --- the value optimisation -------------------------------------------------------------------


@contextlib.contextmanager
def weight_gradients(model, on: bool) -> Iterator[None]:
    """Let the weights require grad (as in a model that was never frozen), then freeze them again."""
    if on:
        model.requires_grad_(True)
    try:
        yield
    finally:
        if on:
            model.requires_grad_(False)
            model.zero_grad(set_to_none=True)


def value_variant(lm, requests, templates, layer: int, site: str, params, *, prefix: bool = True,
                  head_at_positions: bool = True, frozen: bool = True, joint: bool = True):
    """The value optimisation with each speed-up on or off; values (n, d) and steps taken.

    All off is the straightforward implementation: per request, full forward every step, the
    LM head over every position, gradients formed for every weight.
    """
    from editbench.locate.values import optimize_values

    def once(reqs):
        return optimize_values(lm, reqs, templates, layer, site, params,
                               fast=prefix, full_head=not head_at_positions)

    with weight_gradients(lm.model, not frozen):
        results = [once(requests)] if joint else [once([r]) for r in requests]
    return torch.cat([r.values for r in results]), max(r.steps for r in results)


def reference_values(lm, requests, templates, layer: int, site: str, params):
    """The straightforward value optimisation, the reference the optimised one must equal."""
    return value_variant(lm, requests, templates, layer, site, params, prefix=False, head_at_positions=False,
                         frozen=False, joint=False)[0]


VARIANTS: dict[str, dict[str, bool]] = {
    "straightforward": {"prefix": False, "head_at_positions": False, "frozen": False, "joint": False},
    "+ frozen weights": {"prefix": False, "head_at_positions": False, "frozen": True, "joint": False},
    "+ head at positions": {"prefix": False, "head_at_positions": True, "frozen": False, "joint": False},
    "+ prefix reused": {"prefix": True, "head_at_positions": False, "frozen": False, "joint": False},
    "+ one forward for all": {"prefix": False, "head_at_positions": False, "frozen": False, "joint": True},
    "all": {"prefix": True, "head_at_positions": True, "frozen": True, "joint": True},
}


def bench_values(overrides: list[str], n_requests: int, steps: int, threads: int | None,
                 repeats: int = 1) -> dict:
    """Time every VARIANTS entry with early stop off (equal work), then the shipped defaults."""
    if threads:
        torch.set_num_threads(threads)
    from dataclasses import replace

    from torch.utils.flop_counter import FlopCounterMode

    from editbench.config import compose
    from editbench.data import load_requests, resolve_data_dir
    from editbench.locate.templates import flat, generate_context_templates
    from editbench.locate.values import ValueParams
    from editbench.models.loading import load_model
    from editbench.timing import peak_rss_mib

    cfg = compose(overrides)
    lm = load_model(cfg.model)
    device = str(next(lm.model.parameters()).device)
    requests = load_requests(cfg.dataset, resolve_data_dir(cfg.get("data_dir")), num_edits=n_requests,
                             seed=int(cfg.seed))
    groups = generate_context_templates(lm.model, lm.tokenizer,
                                        [list(p) for p in cfg.method.templates.length_params], seed=int(cfg.seed))
    templates = flat(groups)
    layer = int(cfg.method.get("fixed_layers", [lm.spec.n_layers // 4])[-1])
    shipped = ValueParams.from_cfg(cfg.method.value)
    equal_work = replace(shipped, steps=steps, early_stop=-math.inf)
    ffn = lm.spec.ffn_size
    rates = matmul_rates(device, next(lm.model.parameters()).dtype, lm.spec.hidden_size, ffn)

    def timed(fn: Callable) -> tuple[float, Any]:
        best, out = math.inf, None
        for _ in range(repeats):
            start = clock()
            out = fn()
            best = min(best, clock() - start)
        return best, out

    timed(lambda: value_variant(lm, requests[:1], templates, layer, "residual", replace(equal_work, steps=2)))
    rows = {}
    values = {}
    for name, flags in VARIANTS.items():
        seconds, (vals, taken) = timed(lambda f=flags: value_variant(lm, requests, templates, layer, "residual",
                                                                     equal_work, **f))
        values[name] = vals
        rows[name] = {"seconds": seconds, "steps": taken}
    seconds, (vals, taken) = timed(lambda: value_variant(lm, requests, templates, layer, "residual", shipped))
    rows["all + early stop (shipped)"] = {"seconds": seconds, "steps": taken}
    base = rows["straightforward"]["seconds"]
    for row in rows.values():
        row["speedup"] = base / row["seconds"]
    for name in ("straightforward", "all"):
        counter = FlopCounterMode(display=False)
        with counter:
            value_variant(lm, requests, templates, layer, "residual", equal_work, **VARIANTS[name])
        rows[name]["gflop"] = counter.get_total_flops() / 1e9
    floor = rows["all"]["gflop"] / rates["best_gflops"]
    ref = values["straightforward"]
    return {
        "model": lm.name, "device": device, "dtype": str(next(lm.model.parameters()).dtype),
        "requests": n_requests, "templates": len(templates), "layer": layer, "steps": steps,
        "matmul": rates, "variants": rows, "floor_seconds": floor,
        "floor_ratio": rows["all"]["seconds"] / floor,
        "max_rel_diff_vs_straightforward": float(((values["all"] - ref).norm(dim=1) / ref.norm(dim=1)).max()),
        "peak_rss_mib": peak_rss_mib(),
    }


# --- the report -------------------------------------------------------------------------------


def methods_table(runs: Sequence[dict]) -> pd.DataFrame:
    rows = []
    for r in runs:
        row = {"method": r["method"], "batch": r["batch_size"], "edits": r["edits"]}
        row |= {f"{p} s": r["per_edit_seconds"][p] for p in (*PHASES, "total")}
        row["peak RSS MiB"] = r["peak_rss_mib"]
        if r.get("peak_device_mib") is not None:
            row["peak GPU MiB"] = r["peak_device_mib"]
        rows.append(row)
    return pd.DataFrame(rows)


def scaling_table(run: dict, buckets: int = 4) -> pd.DataFrame:
    """Mean seconds per edit (edit + telemetry) in consecutive quarters of the run."""
    series = pd.DataFrame(run["series"])
    series["bucket"] = pd.cut(series["edits_done"], bins=min(buckets, len(series)), labels=False)
    grouped = series.groupby("bucket").agg(edits_done=("edits_done", "max"), seconds=("seconds", "sum"),
                                           edits=("edits", "sum"))
    grouped["seconds per edit"] = grouped["seconds"] / grouped["edits"]
    return grouped[["edits_done", "seconds per edit"]].reset_index(drop=True)


def values_table(values: dict) -> pd.DataFrame:
    df = pd.DataFrame(values["variants"]).T
    df.index.name = "value optimisation"
    return df


def render(report: dict) -> str:
    parts = [f"# editbench benchmark ({report['created']})", "", "```", json.dumps(report["machine"], indent=1),
             "```", f"\ncommand: `{report['command']}`\n"]
    if report.get("methods"):
        parts += ["## Seconds per edit, by phase", "", methods_table(report["methods"]).to_markdown(
            index=False, floatfmt=".3f"), ""]
    if report.get("scaling_edits"):
        parts += ["## MOSE: seconds per edit vs edits done so far", "",
                  scaling_table(report["scaling_edits"]).to_markdown(index=False, floatfmt=".3f"), ""]
    if report.get("scaling_batch"):
        df = pd.DataFrame([{"batch size": r["batch_size"], "seconds per edit": r["per_edit_seconds"]["total"],
                            "values s": r["per_edit_seconds"]["values"]} for r in report["scaling_batch"]])
        parts += ["## MOSE: seconds per edit vs batch size", "", df.to_markdown(index=False, floatfmt=".3f"), ""]
    v = report.get("values")
    if v:
        parts += [f"## Value optimisation ({v['model']}, {v['device']}, {v['dtype']}; {v['requests']} requests × "
                  f"{v['templates']} templates, layer {v['layer']}, {v['steps']} steps, early stop off unless "
                  "named)", "", values_table(v).to_markdown(floatfmt=".3f"), "",
                  f"matmul rate (GFLOP/s): {json.dumps({k: round(x, 1) for k, x in v['matmul']['gflops'].items()})}",
                  f"FLOP floor of the optimised path: {v['floor_seconds']:.3f} s; wall / floor = "
                  f"{v['floor_ratio']:.2f}; max relative |v*(all) - v*(straightforward)| = "
                  f"{v['max_rel_diff_vs_straightforward']:.2e}", ""]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m editbench.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--methods", default="mose,memit,ft", help="comma-separated method names")
    p.add_argument("--edits", type=int, default=8, help="edits per method run")
    p.add_argument("--batch-sizes", default="1,4", help="MOSE batch sizes for the scaling series")
    p.add_argument("--values-requests", type=int, default=4)
    p.add_argument("--values-steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1, help="value-optimisation timings keep the best of N")
    p.add_argument("--device", default=None, help="cpu | cuda (default: the model config's)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: the model config's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--sections", default="methods,scaling,values")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra Hydra override")
    p.add_argument("--out", default=None, help="report dir (default outputs/bench/<time>)")
    p.add_argument("--from-run", default=None, help="only split the time of a finished run dir")
    args = p.parse_args(argv)

    if args.from_run:
        split = split_run(Path(args.from_run))
        print(methods_table([split]).to_markdown(index=False, floatfmt=".3f"))
        print(scaling_table(split).to_markdown(index=False, floatfmt=".3f"))
        return split

    out = Path(args.out or f"outputs/bench/{datetime.now():%Y-%m-%d/%H-%M-%S}")
    out.mkdir(parents=True, exist_ok=True)
    common = [f"model={args.model}", "logger.wandb.mode=disabled", "eval_at=final", *args.set]
    common += [f"model.device={args.device}"] if args.device else []
    common += [f"model.dtype={args.dtype}"] if args.dtype else []
    sections = set(args.sections.split(","))
    report: dict[str, Any] = {"created": f"{datetime.now():%Y-%m-%d %H:%M}", "machine": machine_facts(),
                              "command": "python -m editbench.bench " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.threads:
        report["machine"]["threads"] = args.threads

    def method_run(method: str, batch_size: int) -> dict:
        edits = math.ceil(args.edits / batch_size) * batch_size
        run_dir = out / "runs" / f"{method}-b{batch_size}"
        overrides = [*common, f"method={method}", f"num_edits={edits}", f"batch_size={batch_size}"]
        result = in_fresh_process(run_method, overrides, str(run_dir), args.threads)
        print(f"{method} (batch {batch_size}): {result['per_edit_seconds']['total']:.2f} s per edit", flush=True)
        return result

    if "methods" in sections:
        report["methods"] = [method_run(m, 1) for m in args.methods.split(",")]
    if "scaling" in sections:
        mose = next((r for r in report.get("methods", []) if r["method"] == "mose"), None) or method_run("mose", 1)
        report["scaling_edits"] = mose
        report["scaling_batch"] = [mose if b == 1 else method_run("mose", b)
                                   for b in (int(x) for x in args.batch_sizes.split(","))]
    if "values" in sections:
        report["values"] = in_fresh_process(bench_values, [*common, "method=mose"], args.values_requests,
                                            args.values_steps, args.threads, args.repeats)
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    text = render(report)
    (out / "bench.md").write_text(text)
    print(text)
    print(f"\nwritten: {out / 'bench.json'}, {out / 'bench.md'}")
    return report


if __name__ == "__main__":
    main()
