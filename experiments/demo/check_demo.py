"""Build the shipped demo set: keep the candidate edits whose true answer SmolLM2-135M predicts.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/demo/check_demo.py

For every candidate in candidates.py, the first token of " " + ground_truth (tokenised as the
scorers do, `locate.prompts.target_ids`) must be the model's top-1 next token after the prompt,
and target_new must start with a different token (else the edit would be trivially "reliable").
Kept records are written, taking the relations in turn, in EasyEdit's CounterFact schema to
src/editbench/demo/counterfact_easyedit_mend_format/counterfact-edit.json, and every candidate's
ranks (prompt, rephrase, locality) to experiments/demo/check_results.json.
Locality and rephrase ranks are reported but do not filter: locality is scored as agreement with
the pre-edit model, which does not need the model to be right.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from candidates import CANDIDATES  # noqa: E402

from editbench.config import compose  # noqa: E402
from editbench.data import load_requests  # noqa: E402
from editbench.demo import EDIT_FILE, demo_dir  # noqa: E402
from editbench.locate.forward import logits_at  # noqa: E402
from editbench.locate.prompts import encode, pad_id, pad_right, target_ids  # noqa: E402
from editbench.models.loading import load_model  # noqa: E402

# Outside CounterFact's case_ids (0..21918), so a demo record can never be taken for a real one.
CASE_ID_BASE = 100_000
FIELDS = ("case_id", "prompt", "target_new", "subject", "ground_truth", "rephrase_prompt",
          "locality_prompt", "locality_ground_truth")  # the key order of EasyEdit's files


@torch.no_grad()
def next_token_ranks(model, tokenizer, prompts: list[str], answers: list[int], batch_size: int = 16) -> list[dict]:
    """For each prompt: the top-1 next token and the rank (0 = top-1) of the given answer token."""
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        ids = [encode(tokenizer, p) for p in prompts[start : start + batch_size]]
        batch = pad_right(ids, pad_id(tokenizer), device)
        rows = torch.arange(len(ids), device=device)
        cols = torch.tensor([len(x) - 1 for x in ids], device=device)
        logits = logits_at(model, batch, rows, cols)
        for row, answer in zip(logits, answers[start : start + batch_size], strict=True):
            top = int(row.argmax())
            out.append({"top1": tokenizer.decode([top]), "rank": int((row > row[answer]).sum())})
    return out


def interleave(records: list[dict], relation: dict[int, str]) -> list[dict]:
    """Round-robin over relations, so that the first few records (dataset.selection=first) mix them."""
    groups: dict[str, list[dict]] = {}
    for rec in records:
        groups.setdefault(relation[rec["case_id"]], []).append(rec)
    out = []
    while any(groups.values()):
        for group in groups.values():
            if group:
                out.append(group.pop(0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--out", type=Path, default=demo_dir() / EDIT_FILE)
    args = parser.parse_args()

    lm = load_model(compose([f"model={args.model}"]).model)
    tok = lm.tokenizer
    records = [dict(zip(("relation", "subject", "prompt", "ground_truth", "target_new", "rephrase_prompt",
                         "locality_prompt", "locality_ground_truth"), row, strict=True)) for row in CANDIDATES]
    for i, rec in enumerate(records):
        rec["case_id"] = CASE_ID_BASE + i
    first = {key: [target_ids(tok, r[key])[0] for r in records]
             for key in ("ground_truth", "target_new", "locality_ground_truth")}
    ranks = {
        "prompt": next_token_ranks(lm.model, tok, [r["prompt"] for r in records], first["ground_truth"]),
        "rephrase": next_token_ranks(lm.model, tok, [r["rephrase_prompt"] for r in records], first["ground_truth"]),
        "locality": next_token_ranks(lm.model, tok, [r["locality_prompt"] for r in records],
                                     first["locality_ground_truth"]),
    }
    results, kept = [], []
    for i, rec in enumerate(records):
        known = ranks["prompt"][i]["rank"] == 0
        distinct = first["target_new"][i] != first["ground_truth"][i]
        row = {"case_id": rec["case_id"], "relation": rec["relation"], "subject": rec["subject"],
               "kept": known and distinct, "target_new_distinct": distinct,
               **{f"{k}_rank": v[i]["rank"] for k, v in ranks.items()},
               **{f"{k}_top1": v[i]["top1"] for k, v in ranks.items()}}
        results.append(row)
        if row["kept"]:
            kept.append({k: rec[k] for k in FIELDS})

    kept = interleave(kept, {r["case_id"]: r["relation"] for r in results})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(kept, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    (HERE / "check_results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")

    # The shipped file must load through the same loader and dataset config as a real run.
    loaded = load_requests(compose([]).dataset, args.out.parents[1])
    assert len(loaded) == len(kept), (len(loaded), len(kept))

    by_rel = Counter(r["relation"] for r in results)
    kept_rel = Counter(r["relation"] for r in results if r["kept"])
    print(f"model {lm.name}: {len(records)} candidates, {len(kept)} kept "
          f"({sum(not r['target_new_distinct'] for r in results)} dropped for a target_new sharing the first token)")
    for rel in by_rel:
        print(f"  {rel:18} {kept_rel[rel]:3d} / {by_rel[rel]:3d}")
    loc_ok = sum(r["locality_rank"] == 0 for r in results if r["kept"])
    reph_ok = sum(r["rephrase_rank"] == 0 for r in results if r["kept"])
    print(f"of the kept: locality answer top-1 in {loc_ok}, true answer top-1 after the rephrase in {reph_ok}")
    print(f"wrote {args.out} and {HERE / 'check_results.json'}")


if __name__ == "__main__":
    main()
