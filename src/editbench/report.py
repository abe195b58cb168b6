"""`python -m editbench.report <dir> [<dir> ...]`: tables and figures from finished runs.

Every folder below the given dirs that holds a summary.json is one run. Its row carries the
summary (scores), `config:<dotted key>` columns from the run's saved config, `override:<key>`
columns from Hydra's overrides, and `ds:<task>` columns for the last downstream scores and
retention ratios (the run's own, or `python -m editbench.posthoc`'s where it was run). Scores are
in % (the paper's convention); runs that differ only in the seed are averaged (mean, and std where
there are several).

    python -m editbench.report multirun/2026-11-26/10-00-00 --by method dataset
    python -m editbench.report runs/ --layout paper --out experiments/table1   # Tables 1-2 layout (md, tex, csv),
                                                                               # ordering.md beside the paper's order
    python -m editbench.report runs/ --layout paper --title "Table 2 at cpu scale"  # a caption sentence first
    python -m editbench.report runs/ --plot-norms runs/mose runs/memit         # Fig. 2
    python -m editbench.report runs/ --plot-downstream runs/mose runs/memit    # Fig. 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from editbench.results.figures import (
    downstream_curves,
    downstream_table,
    norm_summary,
    plot_downstream,
    plot_norms,
    trajectories,
)
from editbench.results.ordering import write_ordering
from editbench.results.paper import write_paper
from editbench.results.runs import collect, table


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
        write_ordering(df, dest)  # ordering.md: the order on each score beside the paper's, paired differences
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
