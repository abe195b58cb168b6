"""The four record schemas, each mapped onto `EditRequest` (methods.md D13, §10.2-§10.4).

- `easyedit`: EasyEdit/MEND CounterFact, optionally enriched with the ROME-format sample's
  paraphrase and neighbourhood prompts (data/rome_sample.py);
- `rome`: ROME CounterFact (`requested_rewrite`, paraphrase and neighbourhood prompts);
- `zsre`: MEND ZsRE (`src`, `alt`, `answers`, ...), read under the `easyedit` or `memit` convention;
- `conceptedit`: the record schema of EasyEdit's concept-editing script.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from editbench.data.raw import BadRecord, RecordFields
from editbench.data.records import EditRequest
from editbench.data.rome_sample import RomeSample, rome_ids
from editbench.data.spec import DatasetSpec


@dataclass(frozen=True)
class RecordContext:
    """What a converter needs besides the record."""

    spec: DatasetSpec
    index: int
    rome: RomeSample | None = None


def _subject_template(prompt: str, subject: str, field: str) -> tuple[str, str]:
    """Replace the subject's last occurrence in `prompt` by "{}".

    Returns the template and the subject as written in the prompt: after a case-insensitive
    match the prompt's own spelling is kept, so `prompt_text` reproduces the original prompt.
    """
    if "{}" in prompt:
        raise BadRecord(field, "already contains '{}', which is reserved for the subject")
    start = prompt.rfind(subject)
    if start < 0:
        matches = list(re.finditer(re.escape(subject), prompt, flags=re.IGNORECASE))
        if not matches:
            raise BadRecord(field, f"does not contain the subject {subject!r} (prompt: {prompt!r})")
        start = matches[-1].start()
        subject = matches[-1].group(0)
    return prompt[:start] + "{}" + prompt[start + len(subject):], subject


def _from_easyedit(rec: RecordFields, ctx: RecordContext) -> EditRequest:
    """EasyEdit/MEND CounterFact: the subject is filled into `prompt`."""
    case_id, subject = rec.case_id(), rec.text("subject")
    prompt, subject_in_prompt = _subject_template(rec.text("prompt"), subject, "prompt")
    target_new = rec.text("target_new")
    extra = rec.rest("case_id", "prompt", "subject", "target_new", "ground_truth", "rephrase_prompt",
                     "locality_prompt", "locality_ground_truth")
    neighborhood: tuple[str, ...] = ()
    if ctx.rome is not None and case_id in ctx.rome.by_case:
        neighborhood, rome_extra = ctx.rome.enrichment(case_id, subject, target_new)
        extra.update(rome_extra)
    return EditRequest(
        case_id=case_id,
        prompt=prompt,
        subject=_note_case(subject_in_prompt, subject, extra),
        target_new=target_new,
        target_true=rec.text("ground_truth"),
        rephrase_prompts=(rec.text("rephrase_prompt"),),
        locality_prompts=(rec.text("locality_prompt"),),
        locality_answers=(rec.text("locality_ground_truth"),),
        neighborhood_prompts=neighborhood,
        dataset=ctx.spec.name,
        extra=extra,
    )


def _from_rome(rec: RecordFields, ctx: RecordContext) -> EditRequest:
    """ROME CounterFact: neighbourhood prompts share the true object, so they double as locality."""
    prompt = rec.text("requested_rewrite.prompt")
    if prompt.count("{}") != 1:
        raise BadRecord("requested_rewrite.prompt", f"must contain '{{}}' exactly once (prompt: {prompt!r})")
    target_true = rec.text("requested_rewrite.target_true.str")
    neighborhood = rec.texts("neighborhood_prompts")
    paraphrases = rec.texts("paraphrase_prompts")
    extra = rec.rest("case_id", "requested_rewrite", "paraphrase_prompts", "neighborhood_prompts")
    extra.update(rome_ids(rec), paraphrase_prompts=paraphrases)
    return EditRequest(
        case_id=rec.case_id(),
        prompt=prompt,
        subject=rec.text("requested_rewrite.subject"),
        target_new=rec.text("requested_rewrite.target_new.str"),
        target_true=target_true,
        rephrase_prompts=paraphrases,
        locality_prompts=neighborhood,
        locality_answers=(target_true,) * len(neighborhood),
        neighborhood_prompts=neighborhood,
        dataset=ctx.spec.name,
        extra=extra,
    )


def _from_zsre(rec: RecordFields, ctx: RecordContext) -> EditRequest:
    """MEND ZsRE under one of two conventions (methods.md §10.3, D11).

    easyedit: target_new = `alt`, target_true = `answers[0]`; locality is agreement with the
    pre-edit model on `loc` + `loc_ans`.
    memit: target_new = `answers[0]` (the true answer); locality is accuracy against the NQ gold
    `loc_ans`, on `loc` + "?" as MEMIT's MENDQADataset builds it. There is no meaningful true
    target (MEMIT uses "<|endoftext|>"), so target_true is None.
    """
    subject = rec.text("subject")
    prompt, subject_in_prompt = _subject_template(rec.text("src"), subject, "src")
    if ctx.spec.convention == "easyedit":
        target_new, target_true = rec.text("alt"), rec.texts("answers")[0]
        locality_prompt = rec.text("loc")
    else:
        target_new, target_true = rec.texts("answers")[0], None
        locality_prompt = rec.text("loc") + "?"
    extra = rec.rest("subject", "src", "rephrase", "loc", "loc_ans")
    extra["convention"] = ctx.spec.convention
    return EditRequest(
        case_id=str(ctx.index),
        prompt=prompt,
        subject=_note_case(subject_in_prompt, subject, extra),
        target_new=target_new,
        target_true=target_true,
        rephrase_prompts=(rec.text("rephrase"),),
        locality_prompts=(locality_prompt,),
        locality_answers=(rec.text("loc_ans"),),
        dataset=ctx.spec.name,
        extra=extra,
    )


def _from_conceptedit(rec: RecordFields, ctx: RecordContext) -> EditRequest:
    """ConceptEdit schema: the concept name (`label`) is the subject, its new definition the target."""
    subject = rec.text("label")
    prompt, subject_in_prompt = _subject_template(rec.text("prompt"), subject, "prompt")
    instance_prompts = tuple(p for p in (rec.text("instance_prompt"), rec.optional_text("instance_prompt_2")) if p)
    extra = rec.rest("prompt", "phrase_prompt", "target_new_desc", "locality_prompt", "locality_answer",
                     "label", "ground_truth_desc", "instance_prompt", "instance_prompt_2")
    extra["instance_prompts"] = instance_prompts
    return EditRequest(
        case_id=str(ctx.index),
        prompt=prompt,
        subject=_note_case(subject_in_prompt, subject, extra),
        target_new=rec.text("target_new_desc"),
        target_true=rec.optional_text("ground_truth_desc"),
        rephrase_prompts=(rec.text("phrase_prompt"),),
        locality_prompts=(rec.text("locality_prompt"),),
        locality_answers=(rec.text("locality_answer"),),
        dataset=ctx.spec.name,
        extra=extra,
    )


def _note_case(subject_in_prompt: str, subject: str, extra: dict) -> str:
    """Keep the record's own subject spelling in `extra` when the prompt spells it differently."""
    if subject_in_prompt != subject:
        extra["subject_as_recorded"] = subject
    return subject_in_prompt


CONVERTERS: dict[str, Callable[[RecordFields, RecordContext], EditRequest]] = {
    "easyedit": _from_easyedit,
    "rome": _from_rome,
    "zsre": _from_zsre,
    "conceptedit": _from_conceptedit,
}
