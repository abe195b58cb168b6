"""The paper layout of Tables 1-2 (`python -m editbench.report --layout paper`) on run dirs written by
tiny runs: column groups and methods in the paper's order, the pre-edit row, n per cell, standard
errors, the scale in the caption, and the same content in Markdown, LaTeX and CSV."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from editbench.config import compose
from editbench.io import read_jsonl
from editbench.report import main
from editbench.results.ordering import PAPER_RANK, kendall_tau, orderings
from editbench.results.paper import PRE_EDIT, paper_table
from editbench.results.runs import collect
from editbench.runner import run

CONCEPTS = "ConceptEdit-Inter: concepts (ConceptEdit schema, not the original data)"


def tiny_run(run_dir, data_dir, *overrides: str, model: str = "tiny-llama") -> dict:
    cfg = compose([f"model={model}", "stats.n_tokens=2000", "logger.wandb.mode=disabled",
                   f"data_dir={data_dir}", *overrides])
    return run(cfg, run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Single-sequential cells of three data sets, one left out (MOSE on CounterFact), plus FT, which
    is not in the paper and goes last; and a batch sweep of its own."""
    root = tmp_path_factory.mktemp("paper")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDITBENCH_CACHE", str(root / "cache"))
    try:
        for method, dataset in [("ft", "counterfact"), ("memit", "counterfact"), ("memit", "zsre"),
                                ("mose", "conceptedit"), ("memit", "conceptedit")]:
            tiny_run(root / "single" / f"{method}-{dataset}", data_dir, f"method={method}", f"dataset={dataset}",
                     "dataset.setting=inter" if dataset == "conceptedit" else "seed=0", "num_edits=3")
        for dataset in ("conceptedit", "counterfact"):
            tiny_run(root / "batch" / f"ft-{dataset}", data_dir, "method=ft", f"dataset={dataset}",
                     "batch_size=2", "num_steps=2")
        for model in ("tiny-llama", "tiny-qwen2"):  # (FT's layer on a 4-layer model: conf/method_model/ft_tiny-llama)
            tiny_run(root / "models" / model, data_dir, "method=ft", "num_edits=2", "method.layer=1", model=model)
    finally:
        mp.undo()
    return root


def test_paper_layout_orders_groups_and_methods_with_pre_edit_row_and_n(runs):
    main([str(runs / "single"), "--layout", "paper", "--out", str(runs / "t1"), "--title", "Table 1 (tiny)"])
    df = collect(runs / "single")
    out = paper_table(df)
    groups = list(dict.fromkeys(g for g, _ in out.columns))
    assert groups == ["CounterFact", CONCEPTS, "ZsRE (easyedit convention)"]  # the paper's groups first
    assert list(out.index) == [PRE_EDIT, "MEMIT", "MOSE (paper)", "FT (constrained)"]
    assert list(out.columns[:4]) == [("CounterFact", m) for m in ("Rel.", "Gen.", "Loc.", "n")]
    # each cell: mean ± standard error over the scored requests, from the run's own records
    memit = df[(df.method == "memit") & (df["config:dataset.name"] == "conceptedit")].iloc[0]
    final = pd.DataFrame([e for e in read_jsonl(f"{memit.run_dir}/edits.jsonl") if e.get("final")])
    se = final.reliability.std(ddof=1) / len(final) ** 0.5 * 100
    assert out.loc["MEMIT", (CONCEPTS, "Rel.")] == f"{memit.reliability * 100:.2f} ± {se:.2f}"
    assert out.loc["MEMIT", (CONCEPTS, "n")] == "3"
    # the pre-edit row: the unedited model on the same requests; locality is agreement with itself
    assert out.loc[PRE_EDIT, (CONCEPTS, "Loc.")] == "100.00"
    assert out.loc[PRE_EDIT, (CONCEPTS, "Rel.")] == f"{memit.pre_reliability * 100:.2f}"
    assert out.loc["MOSE (paper)", ("CounterFact", "Rel.")] == "–"  # not run
    assert out.loc["MOSE (paper)", ("CounterFact", "n")] == "–"

    md = (runs / "t1" / "report.md").read_text()
    caption = md.splitlines()[0]
    assert caption.startswith("Table 1 (tiny). tiny-llama, single-sequential editing (batch size 1)")
    assert f"{CONCEPTS}: 3 edits" in caption and "eval_at=final" in caption and "nan" not in md
    # the same rows and cells in the CSV (caption as its `#` first line) and in the LaTeX table
    csv = pd.read_csv(runs / "t1" / "report.csv", comment="#", index_col=0, dtype=str, keep_default_na=False)
    flat = out.set_axis([f"{g} {m}" for g, m in out.columns], axis=1)
    pd.testing.assert_frame_equal(csv, flat, check_names=False)
    assert (runs / "t1" / "report.csv").read_text().splitlines()[0] == f"# {caption}"
    tex = (runs / "t1" / "report.tex").read_text()
    assert "\\multicolumn{4}{c}{" + CONCEPTS + "}" in tex and "\\caption{Table 1 (tiny)." in tex
    assert "eval\\_at=final" in tex and "in \\%" in tex  # escaped for LaTeX
    for label in out.index:
        row = " & ".join(c.replace("±", "$\\pm$").replace("–", "--") for c in out.loc[label])
        assert f"{label} & {row} \\\\" in tex


def test_paper_caption_states_the_batch_scale(runs):
    main([str(runs / "batch"), "--layout", "paper", "--out", str(runs / "t2")])
    caption = (runs / "t2" / "report.md").read_text().splitlines()[0]
    assert "batch-sequential editing, batch size 2" in caption
    assert "CounterFact: 4 edits (2 steps)" in caption and f"{CONCEPTS}: 4 edits (2 steps)" in caption
    out = paper_table(collect(runs / "batch"))
    assert list(dict.fromkeys(g for g, _ in out.columns)) == ["CounterFact", CONCEPTS]
    assert (out.xs("n", axis=1, level=1) == "4").all().all()


def test_paper_layout_gives_each_model_its_block_of_rows(runs):
    df = collect(runs / "models")
    out = paper_table(df)
    assert list(out.index) == ["tiny-llama: pre-edit", "tiny-llama: FT (constrained)",
                               "tiny-qwen2: pre-edit", "tiny-qwen2: FT (constrained)"]
    for model in ("tiny-llama", "tiny-qwen2"):
        one = df[df.model == model].iloc[0]
        assert out.loc[f"{model}: FT (constrained)", ("CounterFact", "Loc.")].startswith(f"{one.locality * 100:.2f}")
    main([str(runs / "models"), "--layout", "paper", "--out", str(runs / "m")])
    caption = (runs / "m" / "report.md").read_text().splitlines()[0]
    assert caption.startswith("tiny-llama, tiny-qwen2, single-sequential editing") and "CounterFact: 2 edits" in caption


def test_ordering_ranks_methods_with_paired_differences_beside_the_papers_order(runs):
    main([str(runs / "single"), "--layout", "paper", "--out", str(runs / "o")])
    df = collect(runs / "single")
    concepts = df[df["config:dataset.name"] == "conceptedit"]
    memit, mose = (concepts[concepts.method == m].iloc[0] for m in ("memit", "mose"))
    per_request = {m: pd.DataFrame([e for e in read_jsonl(f"{r.run_dir}/edits.jsonl") if e.get("final")])
                   .set_index("case_id").reliability * 100 for m, r in (("MEMIT", memit), ("MOSE (paper)", mose))}
    rows = orderings(df)
    rel = rows[(rows.group == CONCEPTS) & (rows.score == "Rel.")].reset_index(drop=True)
    first, second = ("MEMIT", "MOSE (paper)") if memit.reliability > mose.reliability else ("MOSE (paper)", "MEMIT")
    assert list(rel.method) == [first, second] and list(rel["paper_rank"]) == [PAPER_RANK[first], PAPER_RANK[second]]
    assert rel.loc[0, "mean"] == pytest.approx(per_request[first].mean())
    # the neighbours' difference is paired over the same records: its SE is that of the per-request differences
    diff = (per_request[first] - per_request[second]).dropna()
    assert rel.loc[0, "next"] == second and rel.loc[0, "diff_n"] == len(diff) == 3
    assert rel.loc[0, "diff"] == pytest.approx(diff.mean()) and rel.loc[0, "diff"] >= 0
    assert rel.loc[0, "diff_se"] == pytest.approx(diff.std(ddof=1) / len(diff) ** 0.5)
    tie = (diff == 0).all()  # the few fixture concepts can leave both methods with the same scores
    assert rel.loc[0, "relation"] == ("=" if tie else ">" if diff.mean() > 2 * rel.loc[0, "diff_se"] else "≈")
    assert rel["rank"].tolist() == ([1, 1] if tie else [1, 2])
    # every method is also paired with the paper's method (MOSE (paper)); its own row has no such pair
    vs = rel.set_index("method")
    memit_vs_mose = (per_request["MEMIT"] - per_request["MOSE (paper)"]).dropna()
    assert vs.loc["MEMIT", "vs_ref"] == pytest.approx(memit_vs_mose.mean()) and vs.loc["MEMIT", "vs_ref_n"] == 3
    assert vs.loc["MEMIT", "vs_ref_se"] == pytest.approx(memit_vs_mose.std(ddof=1) / 3 ** 0.5, nan_ok=True)
    assert math.isnan(vs.loc["MOSE (paper)", "vs_ref"])
    # two methods: the paper's order (τ = 1), its reverse (-1), or undefined for a tie
    tau = kendall_tau(rel)
    assert math.isnan(tau) if tie else tau == pytest.approx(1.0 if first == "MOSE (paper)" else -1.0)
    # an exact tie (PRUNE's records equal MEMIT's while its restraint has not fired) shares its place and reads "="
    twin = df[(df.method == "memit") & (df["config:dataset.name"] == "counterfact")].assign(label="PRUNE")
    cf = orderings(pd.concat([df, twin], ignore_index=True)).query("group == 'CounterFact' and score == 'Loc.'")
    tied = cf[cf.method.isin(["MEMIT", "PRUNE"])]
    assert tied["rank"].nunique() == 1 and "=" in set(cf.relation.dropna())
    md = (runs / "o" / "ordering.md").read_text()
    assert f"## {CONCEPTS} (tiny-llama)" in md and f"{first} − {second}" in md and "nan" not in md
    assert "Each method against MOSE (paper)" in md and "MEMIT − MOSE (paper)" in md
    assert pd.read_csv(runs / "o" / "ordering.csv").shape[0] == len(rows)
