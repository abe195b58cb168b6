"""Scores after each scored step of `eval_at=[...]` runs: every edit so far on the model after step s.

    PYTHONPATH=src:. python experiments/mose/variants/by_step.py RUN_DIR [RUN_DIR ...] --out by_step.md

A run with eval_at=[10,20] and 30 edits scores edits 1-10 after step 10 and 1-20 after step 20: the
final protocol of a 10- and a 20-edit run on the same records. Rows: run label (with its variant
tags, editbench.report.variant_label) × scored step; mean ± SE (sd/√n) in %, and n. Works on an
unfinished run (its summary missing): the steps scored so far.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from editbench.io import read_jsonl
from editbench.results.runs import METRICS, run_config, variant_label

SHOWN = [m for m in METRICS if m in ("reliability", "generalization", "locality")]


def by_step(run_dir: Path) -> pd.DataFrame:
    config = {f"config:{k}": v for k, v in run_config(run_dir).items()}
    label = variant_label(config.get("config:method.label", run_dir.name), config)
    records = pd.DataFrame(read_jsonl(run_dir / "edits.jsonl"))
    rows = []
    for step, frame in records.groupby("eval_step"):
        row = {"run": label, "after step": int(step), "n": len(frame)}
        for m in SHOWN:
            values = frame[m].dropna().astype(float) * 100
            row[m] = f"{values.mean():.1f} ± {values.std(ddof=1) / len(values) ** 0.5:.1f}"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None, help="a Markdown file (default: print only)")
    args = parser.parse_args()
    table = pd.concat([by_step(r) for r in args.runs], ignore_index=True).sort_values(["after step", "run"])
    text = table.to_markdown(index=False)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
