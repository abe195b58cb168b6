"""How many of a MOSE run's rotations were reflections (issue 26, item 2).

`editors/mose.py` logs per step and edited layer `det_step` (det R_t of that step's Procrustes
solution) and `det_cumulative` (det of the layer's accumulated rotation Q_t = R_t … R_1). With
rotation=orthogonal (the paper, R = U Vᵀ ∈ O(d)) a step may be a reflection, det R = −1; this
counts them, and checks that every logged determinant is ±1 to rounding.

  PYTHONPATH=src:. python experiments/mose/reflections.py RUN_DIR [RUN_DIR ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from editbench.io import read_jsonl


def count_reflections(run_dir: Path) -> dict[str, object]:
    """One row: steps and layer-steps read, how many had det −1 (step, cumulative), the largest ||det| − 1|."""
    steps = [s for s in read_jsonl(run_dir / "steps.jsonl") if "det_step" in s]
    step_dets = [d for s in steps for d in s["det_step"].values()]
    cumulative = [d for s in steps for d in s["det_cumulative"].values()]
    return {
        "run": run_dir.name,
        "steps": len(steps),
        "layer_steps": len(step_dets),
        "reflections (det R_t = −1)": sum(d < 0 for d in step_dets),
        "steps with one": sum(any(d < 0 for d in s["det_step"].values()) for s in steps),
        "cumulative det −1 at the end": sum(d < 0 for d in steps[-1]["det_cumulative"].values()) if steps else 0,
        "max ||det| − 1|": max((abs(abs(d) - 1) for d in step_dets + cumulative), default=float("nan")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="write the table as Markdown here as well")
    args = ap.parse_args()
    table = pd.DataFrame([count_reflections(r) for r in args.runs])
    text = table.to_markdown(index=False, floatfmt=".1e")
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
