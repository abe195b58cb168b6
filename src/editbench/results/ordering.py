"""The methods' order on each score, set beside the paper's (`ordering.md`, written with the paper layout).

The paper's Tables 1 and 2 (mose-paper.txt §6) order the methods the same way on every score, both data
sets and both models: MOSE > AlphaEdit > PRUNE > EMMET > RECT > ROME = MEMIT (both 0). Here each
(model, data set, score) ranks the methods by their mean, and each pair of neighbours in that ranking gets
its **paired** difference over the requests both scored (the same case_id: every cell of a table edits
the same records), mean ± standard error and n. Paired, because the requests' own difficulty is shared
by both methods and cancels: the difference is resolved far sooner than the two cells' SEs suggest.
A difference within 2 SE is not resolved at this n and reads "≈" in the order; an exact tie reads "="
(PRUNE equals MEMIT while its restraint has not fired). Kendall's τ-b compares the order here with the
paper's over the methods the paper has (1: the same order; ties count as ties). Each method is also paired
with the paper's method, MOSE (paper), where that cell exists: how far every method lies from the method
the paper puts first, not only from its neighbour.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau

from editbench.results.paper import PAPER_METHODS, PAPER_METRICS, SHORT, grouped_runs
from editbench.results.runs import scored_requests

# Rank in the paper's Tables 1-2 (1 = best), the same on every score there; ROME and MEMIT tie at 0.
PAPER_RANK = {"MOSE (paper)": 1, "AlphaEdit": 2, "PRUNE": 3, "EMMET": 4, "RECT": 5, "ROME": 6, "MEMIT": 6}
RESOLVED = 2.0  # standard errors a paired difference must exceed to count as resolved
REFERENCE = "MOSE (paper)"  # the method every other one is also paired with (the paper's first)
COLUMNS = ["model", "group", "score", "rank", "method", "mean", "n", "paper_rank",
           "next", "diff", "diff_se", "diff_n", "relation", "vs_ref", "vs_ref_se", "vs_ref_n"]


def _per_request(runs: pd.DataFrame) -> pd.DataFrame:
    """One cell's scores per request (case_id, a column per score), in %; the mean over its runs where there
    are several (seeds). Each run's edits.jsonl is read once, for all scores."""
    frames = [headline for _, run in runs.iterrows()
              if "case_id" in (headline := scored_requests(Path(run["run_dir"]), run.get("protocol"))[0])]
    if not frames:
        return pd.DataFrame(columns=list(PAPER_METRICS), dtype=float)
    requests = pd.concat(frames)
    return requests.groupby("case_id")[[m for m in PAPER_METRICS if m in requests]].mean() * 100


def paired(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """Mean and standard error of a − b over the requests both scored, and their number."""
    diff = (a - b).dropna()
    n = len(diff)
    if n == 0:
        return math.nan, math.nan, 0
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan, n


def _relation(diff: float, se: float) -> str:
    if diff == 0 and (se == 0 or math.isnan(se)):
        return "="
    return ">" if not math.isnan(se) and abs(diff) > RESOLVED * se else "≈"


def orderings(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, group, score, method), best first: its mean, rank here and in the paper, and
    the paired difference to the next method down (`diff`, `diff_se`, `diff_n`, `relation`) and to
    REFERENCE (`vs_ref`, `vs_ref_se`, `vs_ref_n`; empty on its own row or where it did not run)."""
    df, groups = grouped_runs(df)
    df = df.assign(model=df["model"] if "model" in df else "?")
    rows = []
    for model in sorted(df.model.dropna().unique()):
        for group in groups:
            cells = df[(df.model == model) & (df.group == group)]
            per_cell = {label: _per_request(runs) for label, runs in cells.groupby("label")}
            for metric in PAPER_METRICS:
                scores = {label: requests[metric].dropna() for label, requests in per_cell.items()
                          if metric in requests}
                ranked = sorted((s.mean(), label) for label, s in scores.items() if not s.empty)[::-1]
                means = pd.Series([mean for mean, _ in ranked])
                places = means.rank(method="min", ascending=False).astype(int)  # an exact tie shares its place
                for i, ((mean, label), place) in enumerate(zip(ranked, places, strict=True)):
                    row = {"model": model, "group": group, "score": SHORT[metric], "rank": place, "method": label,
                           "mean": mean, "n": len(scores[label]), "paper_rank": PAPER_RANK.get(label)}
                    if i + 1 < len(ranked):
                        below = ranked[i + 1][1]
                        diff, se, n = paired(scores[label], scores[below])
                        row |= {"next": below, "diff": diff, "diff_se": se, "diff_n": n,
                                "relation": _relation(diff, se)}
                    if REFERENCE in scores and label != REFERENCE:
                        row |= dict(zip(("vs_ref", "vs_ref_se", "vs_ref_n"),
                                        paired(scores[label], scores[REFERENCE]), strict=True))
                    rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def kendall_tau(ranks: pd.DataFrame) -> float:
    """τ-b between the means here and the paper's ranks, over the methods the paper has."""
    known = ranks.dropna(subset=["paper_rank"])
    if len(known) < 2:
        return math.nan
    return float(kendalltau(known["mean"], -known["paper_rank"]).statistic)


def _points(diff: float, se: float) -> str:
    return f"{diff:+.2f}" + ("" if math.isnan(se) else f" ± {se:.2f}")


def ordering_markdown(rows: pd.DataFrame) -> str:
    """ordering.md: per model and data set, the order on each score with τ against the paper's, then the
    neighbours' paired differences, then each method's place here and in the paper."""
    paper = " > ".join(sorted((m for m in PAPER_METHODS if PAPER_RANK.get(m, 9) < 6), key=PAPER_RANK.get))
    paper += " > ROME = MEMIT"
    out = [f"# Orderings\n\nThe paper's Tables 1-2, every score, both models: {paper}. Here: best first; "
           f"`≈` = the paired difference to the next is within {RESOLVED:g} standard errors, `=` an exact tie. "
           "τ = Kendall's τ-b against the paper's order (methods the paper has).\n"]
    for (model, group), block in rows.groupby(["model", "group"], sort=False):
        out.append(f"## {group} ({model})\n")
        if not group.startswith(("CounterFact", "ConceptEdit")):
            out.append("The paper has no column for this data set: τ is against its order on the other two.\n")
        order, pairs, against = [], [], []
        for score, ranks in block.groupby("score", sort=False):
            chain = "".join(f"{r['method']} {r['relation']} " if isinstance(r.get("relation"), str) else r["method"]
                            for _, r in ranks.iterrows())
            tau = kendall_tau(ranks)
            order.append({"score": score, "order here (best first)": chain,
                          "τ vs paper": "–" if math.isnan(tau) else f"{tau:.2f}"})
            pairs += [{"score": score, "pair": f"{r['method']} − {r['next']}", "paired difference (points)":
                       _points(r["diff"], r["diff_se"]), "n": int(r["diff_n"])}
                      for _, r in ranks.dropna(subset=["next"]).iterrows()]
            against += [{"score": score, "pair": f"{r['method']} − {REFERENCE}", "paired difference (points)":
                         _points(r["vs_ref"], r["vs_ref_se"]), "n": int(r["vs_ref_n"])}
                        for _, r in ranks.dropna(subset=["vs_ref"]).iterrows()]
        out.append(pd.DataFrame(order).to_markdown(index=False) + "\n")
        if pairs:
            out.append(pd.DataFrame(pairs).to_markdown(index=False) + "\n")
        if against:
            out.append(f"Each method against {REFERENCE} (paired, the same requests):\n\n"
                       + pd.DataFrame(against).to_markdown(index=False) + "\n")
        place = block.pivot_table(index="method", columns="score", values="rank", sort=False)
        place.insert(0, "paper", [PAPER_RANK.get(m) for m in place.index])
        place = place.rename(columns=lambda c: c if c == "paper" else f"here, {c}")
        out.append("Rank (1 = best; the paper's ROME and MEMIT tie for last):\n\n"
                   + place.map(lambda v: "–" if pd.isna(v) else f"{v:.0f}").to_markdown() + "\n")
    return "\n".join(out)


def write_ordering(df: pd.DataFrame, dest: Path) -> pd.DataFrame:
    """ordering.md and ordering.csv (one row per model, data set, score and method) in `dest`."""
    rows = orderings(df)
    if not rows.empty:
        (dest / "ordering.md").write_text(ordering_markdown(rows))
        rows.to_csv(dest / "ordering.csv", index=False)
    return rows
