"""Where MOSE's edits go, and which of them are kept (issue 20).

Reads a finished MOSE run directory (steps.jsonl with the `edit_geometry` and per-group `z_residual`
records of editors/mose.py, edits.jsonl with the per-request scores on the final model) and writes:
  edits.csv        one row per edit: step, case_id, chosen layer l*, the geometry at l* (‖W k‖, the
                   requested change ‖c‖, its parts along / across W k, the norm gap a rotation cannot
                   close, what the rotation realised, what it missed), the same summed over the edited
                   layers, the z* residual at the top layer before the first and after the last edited
                   layer, and the final reliability / generalization / locality and `kept`
  edit_layers.csv  one row per (edit, edited layer) with the raw geometry
  report.md        kept-rate per quantile bin of each predictor
  report.png       the same as four panels
An edit is *kept* when its final reliability (token-level teacher-forced accuracy of the target) is
at least --kept (default 1.0: every target token right). A rotation preserves ‖W k‖ (eq. 15), so
  along share  = |c·ŵ| / ‖c‖  at l*   (how much of the request points along W k)
  gap share    = |‖v‖ − ‖w‖| / ‖c‖   (the fraction of the request no rotation can deliver)
  z left       = ‖z* − z‖ after the last layer / before the first (1: nothing landed at the top)
are the natural predictors of a lost edit; ‖W k‖ at l* is the fourth panel.

  PYTHONPATH=src:. python experiments/mose/where_edits_go.py RUN_DIR --out RUN_DIR/where_edits_go
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from editbench.io import read_jsonl

GEOMETRY = ("output_norm", "change_norm", "change_along_output", "change_across_output", "norm_gap",
            "realised_norm", "realised_along_change", "miss_after")
SCORES = ("reliability", "generalization", "locality")
PREDICTORS = {  # column → axis label of its panel
    "along_share": "|change along W k| / ‖change‖ at l*",
    "output_norm": "‖W k‖ at l*",
    "z_left": "z* residual left after the last layer / before the first",
    "gap_share": "|‖V_E‖ − ‖W k‖| / ‖change‖ at l* (out of a rotation's reach)",
}


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def final_scores(edits: list[dict]) -> dict[str, dict]:
    """case_id → the scores on the final model (the records marked final; else the latest eval_step)."""
    marked = [e for e in edits if e.get("final")]
    if not marked:
        last = max((e.get("eval_step", 0) for e in edits), default=0)
        marked = [e for e in edits if e.get("eval_step", 0) == last]
    return {str(e["case_id"]): e for e in marked}


def edit_tables(steps: list[dict], scores: dict[str, dict], kept_at: float) -> tuple[list[dict], list[dict]]:
    """(per-edit rows, per-(edit, layer) rows) from the step records and the final scores."""
    rows, layer_rows = [], []
    for step in steps:
        if step.get("step") == "finalize" or "edit_geometry" not in step:
            continue
        case_ids = [str(c) for c in step["case_ids"]]
        chosen = dict(zip(case_ids, step.get("chosen_layer") or [], strict=False))
        per_case: dict[str, dict[int, dict]] = defaultdict(dict)
        for layer, geo in step["edit_geometry"].items():
            for i, cid in enumerate(geo["case_ids"]):
                per_case[str(cid)][int(layer)] = {k: geo[k][i] for k in GEOMETRY}
        z_left: dict[str, tuple[float, float]] = {}
        for group in step.get("v") or []:
            stages = group.get("z_residual")
            for i, cid in enumerate(group.get("case_ids") or []):
                if stages:
                    z_left[str(cid)] = (stages[0][i], stages[-1][i])
        for cid in case_ids:
            layers = per_case.get(cid, {})
            if not layers:
                continue
            ordered = sorted(layers)
            anchor = chosen.get(cid, ordered[len(ordered) // 2])  # fixed layers: the middle one
            at = layers.get(anchor, layers[ordered[len(ordered) // 2]])
            z0, z1 = z_left.get(cid, (math.nan, math.nan))
            score = scores.get(cid, {})
            rel = score.get("reliability")
            row = {"step": step["step"], "case_id": cid, "chosen_layer": anchor,
                   "edited_layers": " ".join(map(str, ordered)), **{f"{k}": at[k] for k in GEOMETRY},
                   "along_share": _ratio(abs(at["change_along_output"]), at["change_norm"]),
                   "gap_share": _ratio(abs(at["norm_gap"]), at["change_norm"]),
                   "change_norm_all_layers": sum(g["change_norm"] for g in layers.values()),
                   "realised_along_change_all_layers": sum(g["realised_along_change"] for g in layers.values()),
                   "z_residual_before": z0, "z_residual_after": z1, "z_left": _ratio(z1, z0),
                   **{s: score.get(s, math.nan) for s in SCORES},
                   "kept": None if rel is None else int(rel >= kept_at)}
            rows.append(row)
            for layer in ordered:
                layer_rows.append({"step": step["step"], "case_id": cid, "layer": layer,
                                   "chosen": int(layer == anchor), **layers[layer]})
    return rows, layer_rows


def binned_kept(rows: list[dict], column: str, n_bins: int) -> list[dict]:
    """Kept-rate per quantile bin of `column` (rows with a score and a finite value only)."""
    pairs = [(r[column], r["kept"]) for r in rows
             if r["kept"] is not None and r[column] is not None and math.isfinite(r[column])]
    if not pairs:
        return []
    x = np.array([p[0] for p in pairs], dtype=float)
    kept = np.array([p[1] for p in pairs], dtype=float)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, min(n_bins, len(x)) + 1)))
    if len(edges) < 2:
        edges = np.array([x.min(), x.max()])
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(sel.sum()),
                        "median": float(np.median(x[sel])), "kept_rate": float(kept[sel].mean())})
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def report(rows: list[dict], bins: dict[str, list[dict]], kept_at: float) -> str:
    scored = [r for r in rows if r["kept"] is not None]
    lines = ["# Where MOSE's edits go", "",
             f"{len(rows)} edits, {len(scored)} scored on the final model; kept = final reliability ≥ {kept_at}: "
             f"{sum(r['kept'] for r in scored)} ({100 * np.mean([r['kept'] for r in scored]) if scored else 0:.1f} %).",
             ""]
    for column, label in PREDICTORS.items():
        lines += [f"## {label}", "", "| bin | n | median | kept % |", "|---|---|---|---|"]
        lines += [f"| {b['low']:.3g} – {b['high']:.3g} | {b['n']} | {b['median']:.3g} | {100 * b['kept_rate']:.1f} |"
                  for b in bins[column]]
        lines.append("")
    return "\n".join(lines)


def plot(bins: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PREDICTORS), figsize=(4.2 * len(PREDICTORS), 3.6), sharey=True)
    for ax, (column, label) in zip(axes, PREDICTORS.items(), strict=True):
        b = bins[column]
        if b:
            ax.plot([x["median"] for x in b], [100 * x["kept_rate"] for x in b], "o-")
            for x in b:
                ax.annotate(str(x["n"]), (x["median"], 100 * x["kept_rate"]), textcoords="offset points",
                            xytext=(0, 5), fontsize=7, ha="center")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("edits kept at the end (%)")
    fig.suptitle("MOSE: kept-rate per quantile bin (numbers: edits per bin)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def analyse(run_dir: Path, out: Path, kept_at: float = 1.0, n_bins: int = 5) -> list[dict]:
    steps = read_jsonl(run_dir / "steps.jsonl")
    if not any("edit_geometry" in s for s in steps):
        raise SystemExit(f"{run_dir}/steps.jsonl has no edit_geometry records (a MOSE run from before issue 20?)")
    rows, layer_rows = edit_tables(steps, final_scores(read_jsonl(run_dir / "edits.jsonl")), kept_at)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "edits.csv", rows)
    write_csv(out / "edit_layers.csv", layer_rows)
    bins = {column: binned_kept(rows, column, n_bins) for column in PREDICTORS}
    (out / "report.md").write_text(report(rows, bins, kept_at))
    plot(bins, out / "report.png")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/where_edits_go")
    ap.add_argument("--kept", type=float, default=1.0, help="final reliability at or above which an edit is kept")
    ap.add_argument("--bins", type=int, default=5)
    args = ap.parse_args()
    rows = analyse(args.run_dir, args.out or args.run_dir / "where_edits_go", args.kept, args.bins)
    print(f"{len(rows)} edits → {args.out or args.run_dir / 'where_edits_go'}")


if __name__ == "__main__":
    main()
