"""`python -m editbench.report <sweep_dir> [--by key ...]`: a table of every run under a directory.

Reads each run's summary.json and resolved Hydra overrides with pandas and writes
`report.md` and `report.csv` next to the runs (scores in %, the paper's convention).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

METRICS = ["reliability", "generalization", "locality", "es", "ps", "ns"]


def _overrides(run_dir: Path) -> dict:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    pairs = [o.split("=", 1) for o in yaml.safe_load(path.read_text()) or [] if "=" in o]
    return {k.lstrip("+~"): v for k, v in pairs}


def collect(root: Path) -> pd.DataFrame:
    """One row per run directory (any folder holding a summary.json) below root."""
    rows = []
    for summary in sorted(Path(root).rglob("summary.json")):
        record = json.loads(summary.read_text())
        row = {k: v for k, v in record.items() if not isinstance(v, dict)}
        row |= {f"pre_{k}": v for k, v in record.get("pre", {}).items()}
        row |= {f"override:{k}": v for k, v in _overrides(summary.parent).items()}
        row["run_dir"] = str(summary.parent.relative_to(root))
        rows.append(row)
    return pd.DataFrame(rows)


def table(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    metrics = [m for m in METRICS if m in df]
    out = df[by + ["n"] + metrics].copy()
    out[metrics] = (out[metrics] * 100).round(2)
    return out.sort_values(by).reset_index(drop=True)


def trajectories(run_dir: Path) -> pd.DataFrame:
    """Per step and edited matrix: Frobenius norm and condition number (from steps.jsonl)."""
    from editbench.sinks import read_jsonl

    rows = []
    for rec in read_jsonl(Path(run_dir) / "steps.jsonl"):
        if not isinstance(rec.get("step"), int):
            continue
        for layer, stats in rec.get("matrices", {}).items():
            rows.append({"method": rec["method"], "step": rec["step"], "layer": int(layer),
                         "fro": stats["fro"], "cond": float(stats["cond"])})
    return pd.DataFrame(rows)


def plot_norms(run_dirs: list[Path], path: Path, title: str = "") -> None:
    """Fig. 2 style: Frobenius norm and condition number of each edited matrix vs edit step,
    one colour per run, relative to the matrix's value before editing (1.0 = unchanged)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, run_dir in enumerate(run_dirs):
        df = trajectories(run_dir)
        if df.empty:
            continue
        colour = f"C{i}"
        for j, (_layer, part) in enumerate(df.groupby("layer")):
            part = part.sort_values("step")
            label = f"{part.method.iloc[0]}" if j == 0 else None
            for ax, key in zip(axes, ("fro", "cond"), strict=True):
                ax.plot(part.step, part[key] / part[key].iloc[0], color=colour, alpha=0.7, label=label)
    for ax, name in zip(axes, ("Frobenius norm", "condition number"), strict=True):
        ax.set_xlabel("edit step")
        ax.set_ylabel(f"{name} / value at step 1")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "edited matrices (one line per edited layer)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="where report.md/.csv go (default: root)")
    parser.add_argument("--plot-norms", nargs="+", type=Path, metavar="RUN_DIR",
                        help="also write norms.png (Fig. 2 style) from these run directories")
    parser.add_argument("--by", nargs="+", default=["method", "model", "dataset"],
                        help="columns that identify a row (e.g. override:method.mom2_update_weight)")
    args = parser.parse_args(argv)
    df = collect(args.root)
    if df.empty:
        raise SystemExit(f"no summary.json under {args.root}")
    missing = [c for c in args.by if c not in df]
    if missing:
        raise SystemExit(f"unknown --by columns {missing}; available: {sorted(df.columns)}")
    out = table(df, args.by)
    dest = args.out or args.root
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "report.md").write_text(out.to_markdown(index=False) + "\n")
    out.to_csv(dest / "report.csv", index=False)
    print(out.to_string(index=False))
    if args.plot_norms:
        plot_norms(args.plot_norms, dest / "norms.png")


if __name__ == "__main__":
    main()
