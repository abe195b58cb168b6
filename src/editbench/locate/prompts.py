"""Tokenisation of edit prompts: subject positions and target ids (methods.md §1.2).

Pitfalls handled once, here, for every method and scorer:
- targets are tokenised as " " + target with add_special_tokens=False, so no BOS sneaks into
  the labels (EasyEdit #247) and the leading space survives (#390);
- the subject's last token is found through the fast tokenizer's offset mapping, not by
  re-tokenising substrings or guessing from model names;
- batches are right-padded by us, whatever the tokenizer's padding side (#365): with causal
  attention, right padding leaves every real position's logits unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from editbench.errors import DataError


@dataclass(frozen=True)
class Encoded:
    """One prompt's token ids and the index of the subject's last token (or -1 when absent)."""

    ids: tuple[int, ...]
    subject_last: int


def target_ids(tokenizer, target: str) -> list[int]:
    """Token ids of " " + target, without special tokens."""
    ids = tokenizer(" " + target.strip(), add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None and ids and ids[0] == tokenizer.bos_token_id:
        ids = ids[1:]
    if not ids:
        raise DataError(f"target {target!r} tokenises to nothing; fix the record's target")
    return list(ids)


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of a prompt, with the tokenizer's own special tokens (e.g. Gemma's BOS)."""
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def encode_with_subject(tokenizer, template: str, prompt: str, subject: str) -> Encoded:
    """Tokenise template∘prompt∘subject and locate the subject's last token.

    `template` is a context template with one "{}" (e.g. "Because of this. {}"), `prompt` an
    edit prompt with "{}" standing for the subject.
    """
    before_template, after_template = template.split("{}", 1)
    before_prompt, after_prompt = prompt.split("{}", 1)
    text = before_template + before_prompt + subject + after_prompt + after_template
    subject_end = len(before_template) + len(before_prompt) + len(subject)  # exclusive
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    last = -1
    for i, (start, end) in enumerate(enc["offset_mapping"]):
        if start < subject_end and end > start:
            last = i
    if last < 0:
        raise DataError(f"subject {subject!r} not found in tokenised prompt {text!r}")
    return Encoded(tuple(enc["input_ids"]), last)


@dataclass
class Batch:
    """A padded batch of token sequences with explicit positions (left pads get mask 0)."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    lengths: list[int]
    position_ids: torch.Tensor | None = None  # (B, T); None = 0..T-1 (right padding only)

    def columns(self, start: int, stop: int | None = None) -> Batch:
        """The batch restricted to columns [start, stop); the mask keeps all columns before stop."""
        return Batch(self.input_ids[:, start:stop], self.attention_mask[:, :stop], self.lengths,
                     None if self.position_ids is None else self.position_ids[:, start:stop])


def pad_right(sequences: list[list[int]] | list[tuple[int, ...]], pad_id: int, device=None) -> Batch:
    return pad_both(sequences, [0] * len(sequences), pad_id, device)


def pad_both(sequences, left: list[int], pad_id: int, device=None) -> Batch:
    """Left-pad sequence i by left[i] tokens, then right-pad to a common width.

    Left padding lets us align one position (the subject's last token) across rows; positions
    are counted from each row's first real token, so every real token sees what it would unpadded.
    """
    width = max(n + len(s) for n, s in zip(left, sequences, strict=True))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, (n, s) in enumerate(zip(left, sequences, strict=True)):
        ids[i, n : n + len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, n : n + len(s)] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0) if any(left) else None
    to = (lambda t: t.to(device)) if device is not None else (lambda t: t)
    return Batch(to(ids), to(mask), [len(s) for s in sequences], None if positions is None else to(positions))


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
