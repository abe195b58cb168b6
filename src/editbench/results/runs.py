"""Finished runs as rows: one per run directory (any folder holding a summary.json), and the flat
table over them (`python -m editbench.report <dir> --by ...`).

A run's row carries the summary (scores), `config:<dotted key>` columns from the run's saved config,
`override:<key>` columns from Hydra's overrides, `ds:<task>` columns for the last downstream scores
and retention ratios (the run's own, or `python -m editbench.posthoc`'s where it was run), and the
standard errors over the scored requests.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from editbench.io import read_json, read_jsonl

METRICS = ["reliability", "generalization", "locality", "es", "ps", "ns"]


def _overrides(run_dir: Path) -> dict:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    pairs = [o.split("=", 1) for o in yaml.safe_load(path.read_text()) or [] if "=" in o]
    return {k.lstrip("+~"): v for k, v in pairs}


def run_config(run_dir: Path) -> dict:
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
    ("method.targets", "own"): "own V_E^l targets",  # issue 20
}


def variant_label(label: str, row: dict) -> str:
    """`label` with the tag of every variant setting the run used: "MOSE (paper)" -> "MOSE (paper, SO(d))"."""
    tags = [tag for (k, v), tag in VARIANTS.items() if row.get(f"config:{k}") == v]
    if not tags or not isinstance(label, str):
        return label
    if label.endswith(")"):
        return f"{label[:-1]}, {', '.join(tags)})"
    return f"{label} ({', '.join(tags)})"


def scored_requests(run_dir: Path, protocol: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """edits.jsonl as (headline, final): the per-request records the summary's scores came from (an
    immediate run's scores right after each edit; otherwise the final ones), and those after the last edit."""
    records = read_jsonl(run_dir / "edits.jsonl") if (run_dir / "edits.jsonl").is_file() else []
    final = pd.DataFrame([r for r in records if r.get("final")])
    headline = pd.DataFrame([r for r in records if not r.get("final")]) if protocol == "immediate" else final
    return headline, final


def request_stats(run_dir: Path, protocol: str | None) -> dict:
    """From edits.jsonl, over the scored requests: `se:<metric>` (and `se:after:<metric>`), the standard error
    sd / √n of the records the summary's scores came from (and of the after-last-edit ones), and
    `count:<metric>`, how many of the former carry the metric (see `table`)."""
    headline, final = scored_requests(run_dir, protocol)
    out = {f"count:{m}": int(headline[m].notna().sum()) for m in METRICS if m in headline}
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
            row |= {f"config:{k}": v for k, v in run_config(summary.parent).items()}
            row |= {f"override:{k}": v for k, v in _overrides(summary.parent).items()}
            row |= {f"after:{k}": v for k, v in (record.get("after_last_edit") or {}).items() if k != "n"}
            row |= request_stats(summary.parent, record.get("protocol"))
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
    # A score measured on fewer requests than n states its own n: CounterFact's ES / PS / NS need the ROME
    # fields (target_true, neighbourhood prompts), which the EasyEdit-format records carry only where they
    # overlap the 500-record ROME sample (data/rome_sample.py): 2 of the first 100, for example.
    counts = [m for m in METRICS if m in df and f"count:{m}" in df and (df[f"count:{m}"].fillna(0) != df["n"]).any()]
    for i, m in enumerate(counts):
        out.insert(2 + i, f"n:{m}", grouped[f"count:{m}"].first())
    for m in metrics:
        if (out["seeds"] > 1).any():
            out[f"{m} std"] = std[m]
    return out.round(2).reset_index()
