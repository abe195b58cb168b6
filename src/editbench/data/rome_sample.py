"""The ROME-format CounterFact sample that enriches EasyEdit CounterFact records (methods.md §10.2),
and the relation/Wikidata ids of a ROME record."""

from __future__ import annotations

from pathlib import Path

from editbench.data.raw import BadRecord, RecordFields, read_json_list
from editbench.errors import DataError


class RomeSample:
    """The ROME-format CounterFact sample, indexed by case_id, for enriching EasyEdit records.

    The EasyEdit files carry one paraphrase and one neighbourhood prompt per case; the ROME
    sample has the 2 paraphrases and 10 neighbourhood prompts that ES/PS/NS need.
    """

    def __init__(self, data_dir: Path, file: str):
        self.file = file
        self.records = read_json_list(data_dir, file)
        self.by_case: dict[str, int] = {}
        for index, raw in enumerate(self.records):
            try:
                self.by_case[RecordFields(raw).case_id()] = index
            except BadRecord as err:
                raise DataError(f"{file} record {index}: {err}; fix the record or set dataset.rome_file=null") from err

    def enrichment(self, case_id: str, subject: str, target_new: str) -> tuple[tuple[str, ...], dict]:
        """Neighbourhood prompts and extra fields for one case, checked against the EasyEdit record."""
        index = self.by_case[case_id]
        where = f"{self.file} record {index} (case_id {case_id})"
        rec = RecordFields(self.records[index])
        try:
            for field, expected in (("requested_rewrite.subject", subject),
                                    ("requested_rewrite.target_new.str", target_new)):
                if rec.text(field) != expected:
                    raise BadRecord(field, f"is {rec.text(field)!r} but the edit record says {expected!r}")
            extra = {"paraphrase_prompts": rec.texts("paraphrase_prompts"), **rome_ids(rec)}
            for key in ("attribute_prompts", "generation_prompts"):
                if key in rec.raw:
                    extra[key] = rec.raw[key]
            return rec.texts("neighborhood_prompts"), extra
        except BadRecord as err:
            raise BadRecord("", str(err), where=where) from err


def rome_ids(rec: RecordFields) -> dict:
    """Relation and Wikidata ids of a ROME record, where present."""
    rewrite = rec.raw.get("requested_rewrite", {})
    ids = {"relation_id": rewrite.get("relation_id"),
           "target_new_id": (rewrite.get("target_new") or {}).get("id"),
           "target_true_id": (rewrite.get("target_true") or {}).get("id")}
    return {k: v for k, v in ids.items() if v is not None}
