"""ConceptEdit's token-level protocol (EasyEdit's concept evaluation), checked against an independent
re-computation on a tiny model: reliability on the new definition, generalization on the rephrased
prompt, locality as agreement on the unrelated concept; and no truncation of long definitions."""

from __future__ import annotations

import json

import torch

from editbench.data import load_requests
from editbench.scoring import Scorer

# A definition far longer than EasyEdit's hparams.max_length = 40 tokens, so that a truncating
# scorer would score fewer target positions than the definition has.
LONG = ("a large bowed string instrument with four strings, played upright between the seated player's knees, "
        "made of carved spruce and maple, strung with gut or steel, tuned in fifths an octave below the viola, "
        "and heard in orchestras, string quartets and solo recitals across the whole of the western world")


def _record(**changes) -> dict:
    """One record with exactly the seven fields EasyEdit's run_concept_editing.py reads."""
    rec = {"prompt": "The definition of dog is", "phrase_prompt": "The term dog refers to",
           "target_new_desc": LONG, "instance_prompt": "Whether Labrador Retriever belongs to category dog?",
           "locality_prompt": "The definition of gin is",
           "locality_answer": "a clear distilled alcoholic spirit flavoured mainly with juniper berries",
           "label": "dog"}
    return rec | changes


def _easyedit_style(model, tok, prompt: str, target: str) -> list[tuple[int, int]]:
    """(argmax, label) per target position, as EasyEdit's test_prediction_acc pairs them: one joint
    tokenisation of prompt + " " + target, the labels being its tokens after the prompt's, the
    predictions the argmax one position earlier. Written here from that description, not imported."""
    joint = tok(prompt + " " + target, add_special_tokens=True)["input_ids"]
    n_prompt = len(tok(prompt, add_special_tokens=True)["input_ids"])
    with torch.no_grad():
        logits = model(torch.tensor([joint])).logits[0]
    argmax = logits.argmax(-1).tolist()
    return [(argmax[i - 1], joint[i]) for i in range(n_prompt, len(joint))]


def test_concept_scores_are_easyedit_token_accuracies_on_the_whole_definition(tiny, tmp_path):
    (tmp_path / "final_gpt2_inter.json").write_text(json.dumps([_record()]))
    (req,) = load_requests({"name": "conceptedit", "format": "conceptedit", "file": "final_gpt2_inter.json"},
                           tmp_path)
    model, tok = tiny.model, tiny.tokenizer
    reliability = _easyedit_style(model, tok, "The definition of dog is", LONG)
    generalization = _easyedit_style(model, tok, "The term dog refers to", LONG)
    assert len(reliability) > 40  # the whole definition is scored: EasyEdit sets max_length to at least
    # the longest prompt + target (evaluate_utils.test_prediction_acc), so nothing is cut off
    scorer = Scorer(model, tok, [req])
    rec = scorer.score([req])[0]
    assert rec["reliability"] == sum(p == a for p, a in reliability) / len(reliability)
    assert rec["generalization"] == sum(p == a for p, a in generalization) / len(generalization)
    assert rec["locality"] == 1.0  # the unedited model agrees with itself

    # Locality: the share of the locality answer's positions whose argmax is unchanged, on the locality
    # prompt only (ConceptEditor compares the pre- and post-edit argmaxes; the gold answer is a carrier).
    loc_prompt, loc_answer = req.locality_prompts[0], req.locality_answers[0]
    pre = [p for p, _ in _easyedit_style(model, tok, loc_prompt, loc_answer)]
    head = model.get_output_embeddings().weight
    with torch.no_grad():
        saved = head.clone()
        head.add_(torch.randn(head.shape, generator=torch.Generator().manual_seed(0)) * head.std())
    try:
        post = [p for p, _ in _easyedit_style(model, tok, loc_prompt, loc_answer)]
        expected = sum(a == b for a, b in zip(pre, post, strict=True)) / len(pre)
        assert 0.0 <= expected < 1.0
        assert scorer.score([req])[0]["locality"] == expected
    finally:
        with torch.no_grad():
            head.copy_(saved)
