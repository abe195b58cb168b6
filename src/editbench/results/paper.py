"""The paper's Tables 1-2 layout (`python -m editbench.report <dir> --layout paper`): methods as rows,
(data set, metric) column groups, a caption that states the scale, written as Markdown, LaTeX and CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from editbench.results.runs import table

# The paper's Tables 1-2 (mose-paper.txt §6): methods in this order, column groups CounterFact |
# ConceptEdit-Inter; ZsRE (and any other data set) follows as an extra group.
PAPER_METHODS = ["ROME", "MEMIT", "RECT", "EMMET", "PRUNE", "AlphaEdit", "MOSE (paper)", "MOSE (released code)"]
PAPER_DATASETS = ["counterfact", "counterfact_rome", "conceptedit", "zsre"]
PRE_EDIT = "pre-edit"
PAPER_METRICS = ("reliability", "generalization", "locality")
SHORT = {"reliability": "Rel.", "generalization": "Gen.", "locality": "Loc.", "es": "ES", "ps": "PS", "ns": "NS"}


def group_name(row: pd.Series | dict) -> str:
    """A column group's header: the run's dataset label; ConceptEdit runs are named after the paper's
    group and setting ("ConceptEdit-Inter") and keep their label, so that the offline concept set
    always reads "concepts (ConceptEdit schema, not the original data)"."""
    label = row.get("dataset")
    if row.get("config:dataset.name") == "conceptedit":
        setting = str(row.get("config:dataset.setting") or "inter").capitalize()
        return f"ConceptEdit-{setting}: {label}"
    return label


def grouped_runs(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
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
    df, groups = grouped_runs(df)
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
    df, groups = grouped_runs(df)
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
