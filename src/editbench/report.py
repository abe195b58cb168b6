"""`python -m editbench.report <dir> [<dir> ...]`: tables and figures from finished runs.

Every folder below the given dirs that holds a summary.json is one run. Its row carries the
summary (scores), `config:<dotted key>` columns from the run's saved config, `override:<key>`
columns from Hydra's overrides, and `ds:<task>` columns for the last downstream scores and
retention ratios (the run's own, or `python -m editbench.posthoc`'s where it was run). Scores are
in % (the paper's convention); runs that differ only in the seed are averaged (mean, and std where
there are several).

    python -m editbench.report multirun/2026-11-26/10-00-00 --by method dataset
    python -m editbench.report runs/ --layout paper --out experiments/table1   # Tables 1-2 layout (md, tex, csv)
    python -m editbench.report runs/ --layout paper --title "Table 2 at cpu scale"  # a caption sentence first
    python -m editbench.report runs/ --plot-norms runs/mose runs/memit         # Fig. 2
    python -m editbench.report runs/ --plot-downstream runs/mose runs/memit    # Fig. 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml

from editbench.io import read_json, read_jsonl

METRICS = ["reliability", "generalization", "locality", "es", "ps", "ns"]
SHORT = {"reliability": "Rel.", "generalization": "Gen.", "locality": "Loc.", "es": "ES", "ps": "PS", "ns": "NS"}


def _overrides(run_dir: Path) -> dict:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    pairs = [o.split("=", 1) for o in yaml.safe_load(path.read_text()) or [] if "=" in o]
    return {k.lstrip("+~"): v for k, v in pairs}


def _config(run_dir: Path) -> dict:
    """The run's config, flattened to dotted keys (run_config.yaml, else Hydra's copy)."""
    for path in (run_dir / "run_config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            return _flatten(yaml.safe_load(path.read_text()) or {})
    return {}


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value if not isinstance(value, list) else str(value)
    return out


# Settings that make a method a labelled variant (issue 26): (config key, value) -> tag in the label.
VARIANTS = {
    ("method.rotation", "special_orthogonal"): "SO(d)",
    ("method.selection_optimizer", "adam"): "Adam layer scores",
    ("method.coft_projection", "stack"): "stack COFT",
    ("method.targets", "own"): "own V_E^l targets",  # issue 20 (mose-variants)
}


def variant_label(label: str, row: dict) -> str:
    """`label` with the tag of every variant setting the run used: "MOSE (paper)" -> "MOSE (paper, SO(d))"."""
    tags = [tag for (k, v), tag in VARIANTS.items() if row.get(f"config:{k}") == v]
    if not tags or not isinstance(label, str):
        return label
    if label.endswith(")"):
        return f"{label[:-1]}, {', '.join(tags)})"
    return f"{label} ({', '.join(tags)})"


def standard_errors(run_dir: Path, protocol: str | None) -> dict:
    """`se:<metric>` (and `se:after:<metric>`): the standard error over the scored requests, sd / √n,
    from edits.jsonl: the records the summary's scores came from, and the after-last-edit ones."""
    records = read_jsonl(run_dir / "edits.jsonl") if (run_dir / "edits.jsonl").is_file() else []
    final = pd.DataFrame([r for r in records if r.get("final")])
    headline = pd.DataFrame([r for r in records if not r.get("final")]) if protocol == "immediate" else final
    out = {}
    for prefix, frame in (("se:", headline), ("se:after:", final if protocol == "immediate" else pd.DataFrame())):
        for m in METRICS:
            if m in frame and frame[m].notna().sum() > 1:
                values = frame[m].dropna().astype(float)
                out[f"{prefix}{m}"] = float(values.std(ddof=1) / len(values) ** 0.5)
    return out


def collect(*roots: Path) -> pd.DataFrame:
    """One row per run directory (any folder holding a summary.json) below the roots."""
    rows = []
    for root in roots:
        root = Path(root)
        for summary in sorted(root.rglob("summary.json")):
            record = read_json(summary)
            row = {k: v for k, v in record.items() if not isinstance(v, dict)}
            row |= {f"pre_{k}": v for k, v in record.get("pre", {}).items()}
            row |= {f"ds:{k}": v for k, v in (record.get("downstream") or {}).items() if k != "step"}
            posthoc = summary.parent / "downstream_posthoc.json"  # python -m editbench.posthoc
            if posthoc.is_file():
                row |= {f"ds:{k}": v for k, v in read_json(posthoc).items() if k != "step"}
            row |= {f"config:{k}": v for k, v in _config(summary.parent).items()}
            row |= {f"override:{k}": v for k, v in _overrides(summary.parent).items()}
            row |= {f"after:{k}": v for k, v in (record.get("after_last_edit") or {}).items() if k != "n"}
            row |= standard_errors(summary.parent, record.get("protocol"))
            row["label"] = variant_label(row.get("config:method.label") or row.get("method"), row)
            row["run_dir"] = str(summary.parent)
            rows.append(row)
    return pd.DataFrame(rows)


def table(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One row per `by` cell: scores in %, averaged over seeds (with ± std where there are several)."""
    metrics = ([m for m in METRICS if m in df] + [f"se:{m}" for m in METRICS if f"se:{m}" in df]
               + [f"after:{m}" for m in METRICS if f"after:{m}" in df]
               + [f"se:after:{m}" for m in METRICS if f"se:after:{m}" in df] + [c for c in df if c.startswith("ds:")])
    grouped = df.groupby(by, dropna=False)
    out = grouped[metrics].mean() * 100
    std = grouped[metrics].std() * 100
    out.insert(0, "n", grouped["n"].first())
    out.insert(1, "seeds", grouped.size())
    for m in metrics:
        if (out["seeds"] > 1).any():
            out[f"{m} std"] = std[m]
    return out.round(2).reset_index()


# The paper's Tables 1-2 (mose-paper.txt §6): methods in this order, column groups CounterFact |
# ConceptEdit-Inter; ZsRE (and any other data set) follows as an extra group.
PAPER_METHODS = ["ROME", "MEMIT", "RECT", "EMMET", "PRUNE", "AlphaEdit", "MOSE (paper)", "MOSE (released code)"]
PAPER_DATASETS = ["counterfact", "counterfact_rome", "conceptedit", "zsre"]
PRE_EDIT = "pre-edit"
PAPER_METRICS = ("reliability", "generalization", "locality")


def group_name(row: pd.Series | dict) -> str:
    """A column group's header: the run's dataset label; ConceptEdit runs are named after the paper's
    group and setting ("ConceptEdit-Inter") and keep their label, so that the offline concept set
    always reads "concepts (ConceptEdit schema, not the original data)"."""
    label = row.get("dataset")
    if row.get("config:dataset.name") == "conceptedit":
        setting = str(row.get("config:dataset.setting") or "inter").capitalize()
        return f"ConceptEdit-{setting}: {label}"
    return label


def _grouped(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The runs with their column group (`group`), and the groups in the paper's order."""
    df = df.assign(group=[group_name(r) for _, r in df.iterrows()])
    order = {name: i for i, name in enumerate(PAPER_DATASETS)}
    first = df.drop_duplicates("group").set_index("group")
    return df, sorted(first.index, key=lambda g: (order.get(first.loc[g].get("config:dataset.name"), len(order)), g))


def _cell(mean: float, se: float) -> str:
    return "–" if pd.isna(mean) else f"{mean:.2f}" if pd.isna(se) else f"{mean:.2f} ± {se:.2f}"


def paper_table(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1/2 layout: a pre-edit row, then one row per method label in the paper's order; per data
    set (column groups in the paper's order, extra ones after) Rel. / Gen. / Loc. in % as
    "mean ± standard error over the scored requests" and n, the requests scored in that cell.
    A cell that has not run reads "–". With runs of several models (scale=paper), each model has its
    own block of rows, named "<model>: <method>", as the paper's Model column groups them."""
    df, groups = _grouped(df)
    df = df.assign(model=df["model"] if "model" in df else "?")
    models = sorted(df.model.dropna().unique())
    cells = table(df, ["model", "label", "group"]).set_index(["model", "label", "group"])
    labels = sorted(cells.index.get_level_values(1).unique(),
                    key=lambda x: (PAPER_METHODS.index(x) if x in PAPER_METHODS else len(PAPER_METHODS), x))
    rows: dict[str, dict] = {}

    def name(row: str, model: str) -> str:
        return row if len(models) == 1 else f"{model}: {row}"

    for model in models:
        pre_row = rows.setdefault(name(PRE_EDIT, model), {})
        for g in groups:
            runs = df[(df.group == g) & (df.model == model)]
            for m in PAPER_METRICS:  # before any edit: the same model and requests in every cell of the group
                pre = runs[f"pre_{m}"].mean() * 100 if f"pre_{m}" in runs else float("nan")
                pre_row[(g, SHORT[m])] = _cell(pre, float("nan"))
            pre_row[(g, "n")] = _n(runs["n"])
        for label in labels:
            row = rows.setdefault(name(label, model), {})
            for g in groups:
                key = (model, label, g)
                cell = cells.loc[key] if key in cells.index else pd.Series(dtype=object)
                for m in PAPER_METRICS:
                    row[(g, SHORT[m])] = _cell(cell.get(m, float("nan")), cell.get(f"se:{m}", float("nan")))
                row[(g, "n")] = _n(pd.Series([cell.get("n")], dtype=float))
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index.name = "method"
    return out


def _n(values: pd.Series) -> str:
    """The requests scored in a cell ("–" if it has not run; "a-b" where the runs differ)."""
    values = values.dropna()
    if values.empty:
        return "–"
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}-{high}"


def paper_caption(df: pd.DataFrame, title: str | None = None) -> str:
    """The scale of a paper-layout table, from its runs: model(s), editing scenario, edits per data
    set, protocol, and what the cells hold."""
    parts = [title.rstrip(".") + "."] if title else []
    models = ", ".join(sorted(df["model"].dropna().unique())) if "model" in df else "?"
    batch = sorted({int(b) for b in df.get("batch_size", pd.Series(dtype=float)).dropna()})
    scenario = ("single-sequential editing (batch size 1)" if batch == [1] else
                f"batch-sequential editing, batch size {'/'.join(map(str, batch))}")
    df, groups = _grouped(df)
    sizes = []
    for g in groups:
        runs = df[df.group == g]
        steps = runs["num_steps"].dropna() if "num_steps" in runs else pd.Series(dtype=float)
        per = f"{_n(runs['n'])} edits" + (f" ({_n(steps)} steps)" if batch != [1] and not steps.empty else "")
        sizes.append(f"{g}: {per}")
    protocols = ", ".join(sorted(df["protocol"].dropna().unique())) if "protocol" in df else "?"
    parts.append(f"{models}, {scenario}; {'; '.join(sizes)}; scored {protocols.replace('final', 'once after the last edit (eval_at=final)')}.")
    parts.append("Cells: reliability / generalization / locality in % (token-level, teacher-forced; locality = "
                 "agreement with the pre-edit model), mean ± standard error over the n scored requests; "
                 "– = not run.")
    return " ".join(parts)


def write_paper(df: pd.DataFrame, dest: Path, title: str | None = None) -> pd.DataFrame:
    """report.md / report.tex / report.csv in the paper layout: the same caption, rows and cells in
    each (the CSV's caption is its first line, a `#` comment: pd.read_csv(path, comment="#"))."""
    out = paper_table(df)
    caption = paper_caption(df, title)
    flat = out.set_axis([f"{g} {m}" for g, m in out.columns], axis=1)
    (dest / "report.md").write_text(f"{caption}\n\n{flat.to_markdown(stralign='right')}\n")
    style = out.style.format(escape="latex").format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    tex = style.to_latex(hrules=True, multicol_align="c", caption=_latex_escape(caption))
    (dest / "report.tex").write_text(tex.replace("±", "$\\pm$").replace("–", "--"))
    (dest / "report.csv").write_text(f"# {caption}\n" + flat.to_csv())
    return out


def _latex_escape(text: str) -> str:
    for char in "&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text


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
    config = _config(Path(run_dir))
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", type=Path, nargs="+", help="sweep or run dirs (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where report.md/.csv(/.tex) go (default: first root)")
    parser.add_argument("--layout", choices=["flat", "paper"], default="flat",
                        help="flat: one row per --by cell; paper: methods × (dataset, metric) as in Tables 1-2")
    parser.add_argument("--plot-norms", nargs="+", type=Path, metavar="RUN_DIR",
                        help="also write norms.png (Fig. 2 style) and norms.md/.csv (the same in "
                             "numbers) from these run directories")
    parser.add_argument("--plot-downstream", nargs="+", type=Path, metavar="RUN_DIR",
                        help="also write downstream.png (Fig. 3 style) and downstream.md/.csv from "
                             "these run directories' downstream.jsonl")
    parser.add_argument("--title", default=None,
                        help="--layout paper: the caption's first sentence (the scale follows from the runs)")
    parser.add_argument("--by", nargs="+", default=["method", "model", "dataset"],
                        help="columns that identify a row (e.g. config:method.mom2_update_weight)")
    args = parser.parse_args(argv)
    df = collect(*args.roots)
    if df.empty:
        raise SystemExit(f"no summary.json under {', '.join(map(str, args.roots))}")
    dest = args.out or args.roots[0]
    dest.mkdir(parents=True, exist_ok=True)
    if args.layout == "paper":
        out = write_paper(df, dest, args.title)
        print(out.to_string())
    else:
        missing = [c for c in args.by if c not in df]
        if missing:
            raise SystemExit(f"unknown --by columns {missing}; available: {sorted(df.columns)}")
        out = table(df, args.by)
        (dest / "report.md").write_text(out.to_markdown(index=False) + "\n")
        out.to_csv(dest / "report.csv", index=False)
        print(out.to_string(index=False))
    if args.plot_norms:
        runs = {run_dir.name: trajectories(run_dir) for run_dir in args.plot_norms}  # steps.jsonl read once
        plot_norms(runs, dest / "norms.png")
        norms = norm_summary(runs)
        (dest / "norms.md").write_text(norms.to_markdown(index=False, floatfmt=".4g") + "\n")
        norms.to_csv(dest / "norms.csv", index=False)
    if args.plot_downstream:
        curves = {run_dir.name: downstream_curves(run_dir) for run_dir in args.plot_downstream}
        plot_downstream(curves, dest / "downstream.png")
        scores = downstream_table(curves)
        (dest / "downstream.md").write_text(scores.to_markdown(index=False, floatfmt=".3g") + "\n")
        scores.to_csv(dest / "downstream.csv", index=False)


if __name__ == "__main__":
    main()
