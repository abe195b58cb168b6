"""Scorers (D11): teacher-forced token accuracy and CounterFact's probability scores.

- Reliability / Generalization: for "prompt ␠ target", the fraction of target tokens that are
  the argmax at the previous position (EasyEdit's token-level accuracy, methods.md §10.2-B).
- Locality: the fraction of answer positions whose post-edit argmax equals the pre-edit argmax
  (pre-edit predictions are computed before the first edit), or, for ZsRE's MEMIT convention,
  token accuracy against the gold NQ answer (§10.3).
- ConceptEdit (§10.4) is scored the same way, as EasyEdit's concept evaluation does
  (easyeditor/evaluate/concept_evaluate.py: compute_rewrite_or_rephrase_quality on `prompt` and on
  `phrase_prompt` with the new definition `target_new_desc`; locality = pre/post argmax agreement on
  `locality_prompt` + `locality_answer`, editors/concept_editor.py). Definitions are scored whole: its
  test_prediction_acc tokenises with max_length = max(hparams.max_length, longest prompt + target + 1),
  so nothing is truncated (tests/test_concept_scoring.py).
- ES / PS / NS (§10.2-A, ROME family): NLL-per-token comparisons of target_new and target_true,
  on the prompt, its paraphrases and its neighbourhood prompts; where the records have them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from editbench.data.records import EditRequest
from editbench.locate.forward import logits_at
from editbench.locate.prompts import encode, pad_id, pad_right, target_ids
from editbench.timing import clock


@dataclass(frozen=True)
class Scored:
    """Teacher-forced predictions for one (prompt, answer) pair."""

    predicted: tuple[int, ...]  # argmax token at each answer position
    answer: tuple[int, ...]
    mean_logp: float  # mean log-probability of the answer tokens

    @property
    def accuracy(self) -> float:
        return sum(p == a for p, a in zip(self.predicted, self.answer, strict=True)) / len(self.answer)


def score_answer(log_probs: torch.Tensor, answer: list[int] | tuple[int, ...]) -> Scored:
    """Score one answer from the (log-)probabilities at its positions: (len(answer), vocab)."""
    chosen = log_probs.gather(1, torch.tensor(answer, device=log_probs.device)[:, None]).squeeze(1)
    return Scored(tuple(log_probs.argmax(dim=-1).tolist()), tuple(answer), float(chosen.mean()))


@torch.no_grad()
def teacher_forced(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = 32) -> list[Scored]:
    """Score each (prompt, answer) with one teacher-forced pass; batched, head only at answer positions."""
    device = next(model.parameters()).device
    out: list[Scored] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        prompts = [encode(tokenizer, p) for p, _ in chunk]
        answers = [target_ids(tokenizer, a) for _, a in chunk]
        batch = pad_right([p + a[:-1] for p, a in zip(prompts, answers, strict=True)], pad_id(tokenizer), device)
        rows, cols = [], []
        for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
            rows += [i] * len(a)
            cols += list(range(len(p) - 1, len(p) - 1 + len(a)))
        logp = torch.log_softmax(
            logits_at(model, batch, torch.tensor(rows, device=device), torch.tensor(cols, device=device)), dim=-1
        )
        pos = 0
        for a in answers:
            out.append(score_answer(logp[pos : pos + len(a)], a))
            pos += len(a)
    return out


def agreement(post: Scored, pre: Scored) -> float:
    """Fraction of positions where the post-edit argmax equals the pre-edit argmax."""
    return sum(a == b for a, b in zip(post.predicted, pre.predicted, strict=True)) / len(pre.predicted)


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


class Scorer:
    """Scores edit requests on the model as it stands; holds the pre-edit locality predictions."""

    def __init__(self, model, tokenizer, requests: list[EditRequest], *, locality: str = "agreement",
                 batch_size: int = 32) -> None:
        if locality not in ("agreement", "gold"):
            raise ValueError(f"locality must be 'agreement' or 'gold', not {locality!r}")
        self.model, self.tokenizer, self.locality, self.batch_size = model, tokenizer, locality, batch_size
        self.pre: dict[str, list[Scored]] = {}
        self.pre_scores: dict[str, dict] = {}
        self.seconds = 0.0  # wall time of post-edit scoring, for the benchmark
        self.snapshot_pre(requests)

    def _locality_pairs(self, req: EditRequest) -> list[tuple[str, str]]:
        return list(zip(req.locality_prompts, req.locality_answers, strict=True))

    def snapshot_pre(self, requests: list[EditRequest]) -> None:
        """Record pre-edit predictions (locality baseline) and pre-edit scores; call before any edit."""
        pairs = [p for r in requests for p in self._locality_pairs(r)]
        scored = iter(teacher_forced(self.model, self.tokenizer, pairs, self.batch_size))
        for r in requests:
            self.pre[r.case_id] = [next(scored) for _ in r.locality_prompts]
        for r, s in zip(requests, self.score(requests, pre=True), strict=True):
            self.pre_scores[r.case_id] = s

    def score(self, requests: list[EditRequest], *, pre: bool = False) -> list[dict]:
        """One record of metrics per request."""
        start = clock()
        pairs: list[tuple[str, str]] = []
        plan = []
        for r in requests:
            groups = {
                "rel": [(r.prompt_text, r.target_new)],
                "gen": [(p, r.target_new) for p in r.rephrase_prompts],
                "loc": self._locality_pairs(r),
            }
            if r.target_true and r.neighborhood_prompts:
                para = list(r.extra.get("paraphrase_prompts", r.rephrase_prompts))  # ROME's 2 paraphrases
                groups |= {
                    "es_new": [(r.prompt_text, r.target_new)], "es_true": [(r.prompt_text, r.target_true)],
                    "ps_new": [(p, r.target_new) for p in para], "ps_true": [(p, r.target_true) for p in para],
                    "ns_new": [(p, r.target_new) for p in r.neighborhood_prompts],
                    "ns_true": [(p, r.target_true) for p in r.neighborhood_prompts],
                }
            spans = {}
            for name, group in groups.items():
                spans[name] = (len(pairs), len(pairs) + len(group))
                pairs += group
            plan.append(spans)
        scored = teacher_forced(self.model, self.tokenizer, pairs, self.batch_size)
        records = []
        for r, spans in zip(requests, plan, strict=True):
            def part(name, spans=spans):
                a, b = spans[name]
                return scored[a:b]

            rec = {
                "case_id": r.case_id,
                "reliability": _mean([s.accuracy for s in part("rel")]),
                "generalization": _mean([s.accuracy for s in part("gen")]),
            }
            if pre or self.locality == "gold":
                loc = [s.accuracy for s in part("loc")] if self.locality == "gold" else [1.0 for _ in part("loc")]
            else:
                loc = [agreement(s, p) for s, p in zip(part("loc"), self.pre[r.case_id], strict=True)]
            rec["locality"] = _mean(loc)
            if "es_new" in spans:
                rec["es"] = float(part("es_new")[0].mean_logp > part("es_true")[0].mean_logp)
                rec["ps"] = _mean([float(n.mean_logp > t.mean_logp)
                                   for n, t in zip(part("ps_new"), part("ps_true"), strict=True)])
                rec["ns"] = _mean([float(t.mean_logp > n.mean_logp)
                                   for n, t in zip(part("ns_new"), part("ns_true"), strict=True)])
            records.append(rec)
        if not pre:
            self.seconds += clock() - start
        return records
