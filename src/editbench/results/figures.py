"""Figs. 2-3 from run directories, as plots and in numbers: the edited matrices' norms and condition
numbers per step (steps.jsonl), and the downstream scores per evaluation step (downstream.jsonl)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from editbench.io import read_jsonl
from editbench.results.runs import run_config, variant_label


def trajectories(run_dir: Path) -> pd.DataFrame:
    """Per step and edited matrix: Frobenius norm and condition number (from steps.jsonl), and both
    relative to the matrix before editing (`fro_ratio`, `cond_ratio`; 1.0 = unchanged)."""
    rows = []
    for rec in read_jsonl(Path(run_dir) / "steps.jsonl"):
        if not isinstance(rec.get("step"), int):
            continue
        for layer, stats in rec.get("matrices", {}).items():
            rows.append({"method": rec["method"], "step": rec["step"], "layer": int(layer),
                         "fro": stats["fro"], "cond": float(stats["cond"]),
                         "fro0": stats.get("fro0"), "cond0": stats.get("cond0"),
                         "sv_drift": stats.get("sv_drift"), "edit_seconds": rec.get("edit_seconds")})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for key in ("fro", "cond"):
        # relative to W0 (older runs without it: to the first value logged, the matrix after edit 1)
        base = pd.to_numeric(df[f"{key}0"]).fillna(df.groupby("layer")[key].transform("first"))
        df[f"{key}_ratio"] = df[key] / base
    return df


def _span(values: pd.Series, fmt: str) -> str:
    low, high = format(values.min(), fmt), format(values.max(), fmt)
    return low if low == high else f"{low}-{high}"


def norm_summary(runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Fig. 2 in numbers, one row per run: the edited matrices' Frobenius norm and condition number
    after the last step relative to W0 (min-max over the edited layers), the largest norm ratio seen
    at any step, the largest singular-value drift (max |σ_i - σ0_i| / σ0_max, telemetry.py) and the
    mean seconds per edit. `runs`: run name → its trajectories()."""
    rows = []
    for name, df in runs.items():
        if df.empty or df.fro0.isna().any():
            continue  # no telemetry, or an older run without W0's values
        fro, cond = df.fro_ratio, df.cond_ratio
        last = df.step == df.step.max()
        per_step = df.drop_duplicates("step")
        rows.append({"run": name, "method": df.method.iloc[0], "steps": int(df.step.max()),
                     "layers": df.layer.nunique(),
                     "fro/fro0 final": _span(fro[last], ".4g"), "fro/fro0 max": fro.max(),
                     "cond/cond0 final": _span(cond[last], ".3g"),
                     "max sv drift": df.sv_drift.max(),
                     "s per edit": per_step.edit_seconds.mean()})
    return pd.DataFrame(rows)


def _pyplot():
    """matplotlib's pyplot on the file-only backend (no display on servers and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_norms(runs: dict[str, pd.DataFrame], path: Path, title: str = "") -> None:
    """Fig. 2 style: Frobenius norm and condition number of each edited matrix vs edit step,
    one colour per run, relative to the matrix's value before editing (1.0 = unchanged).
    `runs`: run name → its trajectories()."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, df in enumerate(runs.values()):
        if df.empty:
            continue
        colour = f"C{i}"
        for j, (_layer, part) in enumerate(df.groupby("layer")):
            part = part.sort_values("step")
            label = f"{part.method.iloc[0]}" if j == 0 else None
            for ax, key in zip(axes, ("fro_ratio", "cond_ratio"), strict=True):
                ax.plot(part.step, part[key], color=colour, alpha=0.7, label=label)
    for ax, name in zip(axes, ("Frobenius norm", "condition number"), strict=True):
        ax.set_xlabel("edit step")
        ax.set_ylabel(f"{name} / before editing")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "edited matrices (one line per edited layer)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def downstream_curves(run_dir: Path) -> pd.DataFrame:
    """Per evaluation step and task: the score and its ratio to the pre-edit score (downstream.jsonl:
    step 0, every k steps and after the last; runner.Downstream), labelled with the run's method."""
    records = read_jsonl(Path(run_dir) / "downstream.jsonl")
    df = pd.DataFrame([r for r in records if isinstance(r.get("step"), int)])
    if df.empty:
        return df
    config = run_config(Path(run_dir))
    label = variant_label(config.get("method.label") or df.method.iloc[0], {f"config:{k}": v for k, v in config.items()})
    return df.assign(label=label)[["label", "step", "task", "score", "retention"]]


def downstream_table(runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Fig. 3 in numbers: one row per run and evaluation step, per task the score and its retention
    (% of the pre-edit score)."""
    parts = [df.assign(run=name) for name, df in runs.items() if not df.empty]
    if not parts:
        return pd.DataFrame()
    long = pd.concat(parts).assign(retention=lambda d: d.retention * 100)
    wide = long.pivot_table(index=["run", "label", "step"], columns="task", values=["score", "retention"])
    wide.columns = [f"{task} {value}" for value, task in wide.columns]
    return wide[sorted(wide.columns)].reset_index()


def plot_downstream(runs: dict[str, pd.DataFrame], path: Path) -> None:
    """Fig. 3 style: each downstream task's score relative to the pre-edit model vs edit step, one
    panel per task, one line per run. `runs`: run name → its downstream_curves()."""
    tasks = sorted({t for df in runs.values() if not df.empty for t in df.task})
    if not tasks:
        raise SystemExit("no downstream.jsonl with evaluations in the --plot-downstream runs "
                         "(run them with downstream=glue or downstream=usual)")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for i, df in enumerate(runs.values()):
            part = df[df.task == task].sort_values("step") if not df.empty else df
            if not part.empty:
                ax.plot(part.step, part.retention * 100, marker="o", color=f"C{i}", label=part.label.iloc[0])
        ax.axhline(100, color="grey", lw=0.8, ls="--")
        ax.set_title(task)
        ax.set_xlabel("edit step")
        ax.set_ylabel("score, % of the pre-edit model")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
