"""Scoring functions of the general-ability tasks, free of lm-eval so they can be tested alone.

What they reproduce (methods.md §10.5 / §10.6):

* NLI and sentiment (Gu et al. 2024, "Model Editing Harms General Abilities", and PRUNE, Ma et al.
  2025): the answer word is parsed from a short greedy generation; accuracy is over the parsed
  answers, and a total accuracy counts unparsable answers as wrong.
* Open-domain QA (same papers): lenient exact match after SQuAD normalisation.
* Summarisation (same papers): mean of ROUGE-1/2/L F1.
* GLUE log-likelihood variants (AlphaEdit / Gupta et al. ``glue_eval``): accuracy, macro F1, MCC.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Sequence
from functools import lru_cache

# --- SQuAD normalisation and lenient exact match ------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop ASCII punctuation, drop articles, squeeze spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def lenient_exact_match(prediction: str, answers: Iterable[str]) -> bool:
    """True if some contiguous run of words of the normalised prediction equals a normalised answer.

    The USTC harness tests the first word, the last word and every contiguous span; the first
    and last words are spans too, so one span test covers all three. Answers that normalise to
    the empty string (e.g. "The") never match: an empty span would make every prediction a hit.
    """
    words = normalize_answer(prediction).split()
    for answer in answers:
        target = normalize_answer(answer).split()
        if not target or len(target) > len(words):
            continue
        n = len(target)
        if any(words[i:i + n] == target for i in range(len(words) - n + 1)):
            return True
    return False


# --- answer-word parsing for the classification tasks --------------------------------------------


def first_word(text: str) -> str:
    """The first whitespace-separated word of a generation, lowercased, punctuation and quotes stripped.

    The generation is a few tokens long (see tasks.py: one token cannot spell "positive" with
    every BPE vocabulary), so the answer is taken from its first word only: "True." and "'positive'"
    parse, "The answer is True" does not.
    """
    for word in text.split():
        stripped = word.strip(string.punctuation + "\u201c\u201d\u2018\u2019").lower()
        if stripped:
            return stripped
    return ""


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label (from ``labels``, compared case-insensitively) that the generation's first word names, or None."""
    word = first_word(text)
    for label in labels:
        if word == label.lower():
            return label
    return None


# --- ROUGE ---------------------------------------------------------------------------------------

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    # No stemming: the USTC harness used the python `rouge` package, which does not stem either.
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)


def rouge_f(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F1 of one prediction against one reference (``rouge-score`` package)."""
    scores = _rouge_scorer().score(reference, prediction)  # score(target, prediction)
    return {name: scores[name].fmeasure for name in ROUGE_TYPES}


# --- aggregations (called by lm-eval on the per-document values) ----------------------------------


def ratio(items: Sequence[tuple[float, float]]) -> float:
    """sum(numerator) / sum(denominator) over (numerator, denominator) pairs; NaN when nothing was counted.

    Used for accuracy over the parsed answers: each document gives (correct, parsed).
    """
    den = sum(d for _, d in items)
    return sum(n for n, _ in items) / den if den else math.nan


def macro_f1(items: Sequence[tuple[int, int]]) -> float:
    """Unweighted mean over classes of the per-class F1, from (gold, pred) pairs."""
    classes = sorted({g for g, _ in items} | {p for _, p in items})
    f1s = []
    for c in classes:
        tp = sum(1 for g, p in items if g == c and p == c)
        fp = sum(1 for g, p in items if g != c and p == c)
        fn = sum(1 for g, p in items if g == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(f1s) / len(f1s) if f1s else math.nan


def mcc(items: Sequence[tuple[int, int]]) -> float:
    """Matthews correlation coefficient of binary (gold, pred) pairs with labels 0/1; 0 when undefined."""
    tp = sum(1 for g, p in items if g == 1 and p == 1)
    tn = sum(1 for g, p in items if g == 0 and p == 0)
    fp = sum(1 for g, p in items if g == 0 and p == 1)
    fn = sum(1 for g, p in items if g == 1 and p == 0)
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / den if den else 0.0
