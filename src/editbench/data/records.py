"""The one record type every loader produces and every editor and scorer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EditRequest:
    """One fact to edit, with everything needed to score it.

    `prompt` holds the subject as "{}" (e.g. "The mother tongue of {} is"), so that the
    subject's last token can be located in any context template. All other prompts are
    plain text with the subject already filled in.
    """

    case_id: str
    prompt: str
    subject: str
    target_new: str
    target_true: str | None = None
    rephrase_prompts: tuple[str, ...] = ()
    locality_prompts: tuple[str, ...] = ()
    locality_answers: tuple[str, ...] = ()
    # ROME-format extras for the probability scorers ES/PS/NS (methods.md §10.2-A).
    neighborhood_prompts: tuple[str, ...] = ()
    dataset: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def prompt_text(self) -> str:
        """The edit prompt with the subject filled in."""
        return self.prompt.replace("{}", self.subject)
