"""Scorers on hand-built logits; telemetry against numpy's SVD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from editbench.data.records import EditRequest
from editbench.numerics import matrix_stats
from editbench.scoring import Scored, Scorer, agreement, score_answer


def _log_probs(argmaxes: list[int], vocab: int = 6) -> torch.Tensor:
    logits = torch.zeros(len(argmaxes), vocab)
    for i, a in enumerate(argmaxes):
        logits[i, a] = 5.0
    return torch.log_softmax(logits, dim=-1)


def test_token_accuracy_counts_teacher_forced_hits():
    scored = score_answer(_log_probs([1, 2, 3]), [1, 4, 3])
    assert scored.predicted == (1, 2, 3)
    assert scored.accuracy == pytest.approx(2 / 3)  # a 3-token target can score 1/3 steps (EasyEdit #434)
    assert score_answer(_log_probs([1]), [1]).accuracy == 1.0


def test_mean_logp_of_answer():
    lp = _log_probs([0, 0])
    scored = score_answer(lp, [0, 1])
    assert scored.mean_logp == pytest.approx(float((lp[0, 0] + lp[1, 1]) / 2))


def test_locality_is_agreement_with_pre_edit_predictions():
    pre = Scored((5, 6, 7), (9, 9, 9), -1.0)  # the gold answer is only a carrier
    assert agreement(Scored((5, 6, 7), (9, 9, 9), -2.0), pre) == 1.0
    assert agreement(Scored((5, 0, 7), (9, 9, 9), -2.0), pre) == pytest.approx(2 / 3)


def test_scorer_on_unedited_model_gives_full_locality_and_es_matches_logprobs(tiny):
    req = EditRequest("7", "The capital of {} is", "France", "Berlin", "Paris", rephrase_prompts=("France's capital is",),
                      locality_prompts=("The capital of Italy is",), locality_answers=("Rome",),
                      neighborhood_prompts=("The capital of Spain is",))
    scorer = Scorer(tiny.model, tiny.tokenizer, [req])
    rec = scorer.score([req])[0]
    assert rec["locality"] == 1.0
    assert 0.0 <= rec["reliability"] <= 1.0
    from editbench.scoring import teacher_forced

    new, true = teacher_forced(tiny.model, tiny.tokenizer, [(req.prompt_text, "Berlin"), (req.prompt_text, "Paris")])
    assert rec["es"] == float(new.mean_logp > true.mean_logp)
    # moving the model changes locality away from 1 only through argmax changes
    with torch.no_grad():
        tiny.model.get_output_embeddings().weight.mul_(-1)
    try:
        assert scorer.score([req])[0]["locality"] < 1.0
    finally:
        with torch.no_grad():
            tiny.model.get_output_embeddings().weight.mul_(-1)


@pytest.mark.parametrize("shape", [(12, 30), (30, 12)])
def test_telemetry_matches_numpy_svd(shape):
    rng = np.random.default_rng(0)
    W0 = rng.standard_normal(shape)
    W = W0 + 0.1 * rng.standard_normal(shape)
    sv = np.linalg.svd(W, compute_uv=False)
    sv0 = np.linalg.svd(W0, compute_uv=False)
    stats = matrix_stats(torch.tensor(W, dtype=torch.float32).double(), torch.tensor(W0))
    assert stats["fro"] == pytest.approx(np.linalg.norm(W, "fro"))
    assert stats["spectral"] == pytest.approx(sv[0])
    assert stats["sigma_min"] == pytest.approx(sv[-1])
    assert stats["cond"] == pytest.approx(np.linalg.cond(W))
    assert stats["delta_fro"] == pytest.approx(np.linalg.norm(W - W0, "fro"))
    assert stats["sv_drift"] == pytest.approx(np.abs(sv - sv0).max() / sv0[0])


def test_telemetry_smallest_nonzero_singular_value_of_rank_deficient_matrix():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 10))  # rank 3
    stats = matrix_stats(torch.tensor(W))
    sv = np.linalg.svd(W, compute_uv=False)
    assert stats["sigma_min"] == pytest.approx(sv[2])
    assert stats["cond"] == pytest.approx(sv[0] / sv[2])


@pytest.mark.parametrize("rows", [1, 5, 1024])
def test_blockwise_norms_and_update_ratio_equal_numpy(rows):
    """Row blocks (no float64 copy of an 8B-width matrix) give the whole-matrix float64 numbers."""
    from editbench.numerics import checked_update_ratio, norm_stats

    rng = np.random.default_rng(2)
    W0 = rng.standard_normal((13, 7)).astype(np.float32)
    W = W0 + 0.3 * rng.standard_normal((13, 7))
    stats = norm_stats(torch.tensor(W), torch.tensor(W0), rows=rows)
    assert stats["fro"] == pytest.approx(np.linalg.norm(W), rel=1e-12)
    assert stats["fro0"] == pytest.approx(np.linalg.norm(W0.astype(np.float64)), rel=1e-12)
    assert stats["delta_fro"] == pytest.approx(np.linalg.norm(W - W0), rel=1e-12)
    ratio = checked_update_ratio(torch.tensor(W), torch.tensor(W0), torch.bfloat16, rows=rows)
    assert ratio == pytest.approx(np.linalg.norm(W - W0) / np.linalg.norm(W0.astype(np.float64)), rel=1e-12)
    overflow = torch.tensor(W)
    overflow[-1, 0] = 1e39  # finite in float64, infinite once written as bfloat16
    assert checked_update_ratio(overflow, torch.tensor(W0), torch.bfloat16, rows=rows) is None
    assert checked_update_ratio(overflow, torch.tensor(W0), torch.float64, rows=rows) is not None
