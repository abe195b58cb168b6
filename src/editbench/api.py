"""The Python API: the command line's editing path, step by step, on a model kept in memory.

    import editbench
    session = editbench.load(model="smollm2-135m")    # editbench/conf composed with overrides, as the CLI does
    requests = session.requests(num_edits=4)           # the configured dataset (the demo set by default)
    session.edit(requests)                             # pre-edit snapshot first, then the editor's steps
    session.score(requests); session.telemetry()

The configuration is `editbench.config.compose` with Hydra overrides, exactly as
`python -m editbench ...` composes it, and the editing objects are built by the same helpers
(editbench/build.py: `context_templates`, `build_method`, `make_scorer`) as the runner's loop, so a
session and a CLI run with the same config edit the same weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig

from editbench.build import (
    build_method,
    check_loaded,
    config_warnings,
    context_templates,
    make_scorer,
    plan_steps,
    second_moments,
    seed_everything,
    summarize,
)
from editbench.config import compose
from editbench.data import load_requests, requests_from_records, resolve_data_dir
from editbench.data.records import EditRequest
from editbench.editors.base import Editor
from editbench.errors import ConfigError
from editbench.models.loading import load_model
from editbench.scoring import Scorer
from editbench.telemetry import Telemetry

__all__ = ["Session", "build_method", "context_templates", "load", "make_scorer", "second_moments", "to_overrides"]


# --------------------------------------------------------------------------- overrides


_PLAIN = re.compile(r"^[\w./:+\-@~]*$")


def _value(value: Any) -> str:
    """A Python value written as a Hydra override value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value(v) for v in value) + "]"
    text = str(value)
    if _PLAIN.match(text) and text:
        return text
    # Quoted, so paths with spaces or commas stay one string.
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_overrides(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keyword values as Hydra overrides: {"stats": {"n_tokens": 2000}} -> ["stats.n_tokens=2000"]."""
    out = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            out += to_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={_value(value)}")
    return out


# --------------------------------------------------------------------------- the session


def load(model: str = "smollm2-135m", overrides: Sequence[str] = (), **values: Any) -> Session:
    """Compose the config (editbench/conf plus overrides, as on the command line) and load the model.

    `values` are config keys, nested as dicts: `load(model="tiny-llama", num_edits=4,
    stats={"n_tokens": 2000}, data_dir="/data")`; `overrides` are raw Hydra strings and win.
    """
    return Session([f"model={model}", *to_overrides(values), *overrides])


class Session:
    """One loaded model, its C0 statistics, an editor, and the pre-edit snapshot for scoring.

    The Scorer's locality baseline must come from the unedited model, so every request is
    snapshotted the first time it is seen (by `edit`, `score` or `track`); a request first seen
    after an edit is refused rather than scored against an edited baseline.
    """

    def __init__(self, overrides: Sequence[str] = ()) -> None:
        self.overrides = list(overrides)
        self.cfg = compose(self.overrides)
        self.config_warnings = config_warnings(self.cfg)  # the value rules, before the model loads
        if self.cfg.get("threads"):
            torch.set_num_threads(int(self.cfg.threads))
        seed_everything(int(self.cfg.seed))
        self.data_dir = resolve_data_dir(self.cfg.get("data_dir"))
        self.lm = load_model(self.cfg.model)
        check_loaded(self.cfg, self.lm)
        self.stats = second_moments(self.cfg, self.lm, self.data_dir)
        self.originals: dict[int, torch.Tensor] = {}  # shared by every editor of this session
        self.method_cfg: DictConfig | None = None
        self._editor: Editor | None = None
        self._templates: dict[str, list[list[str]]] = {}
        self._scorer: Scorer | None = None
        self._tracked: dict[str, EditRequest] = {}
        self._telemetry = Telemetry.from_cfg(self.cfg, self.lm.spec, self.lm.model, self.originals)
        self._edited = False

    @property
    def model(self):
        return self.lm.model

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    # --- data --------------------------------------------------------------------------
    def requests(self, num_edits: int | None = None, offset: int | None = None) -> list[EditRequest]:
        """Records of the configured dataset, selected as a run selects them (offset, seed, selection).

        By default as many as the run would edit: batch_size × num_steps (num_steps defaults to
        ceil(num_edits / batch_size)).
        """
        if num_edits is None:
            batch_size, num_steps = plan_steps(self.cfg)
            num_edits = batch_size * num_steps
        start = offset if offset is not None else self.cfg.offset
        return load_requests(self.cfg.dataset, self.data_dir, num_edits=int(num_edits), offset=int(start),
                             seed=int(self.cfg.seed))

    def as_requests(self, requests: Iterable[EditRequest | Mapping]) -> list[EditRequest]:
        """EditRequests as given; dicts in EasyEdit's CounterFact schema through the loader's converter."""
        out = []
        for item in requests:
            if isinstance(item, EditRequest):
                out.append(item)
            elif isinstance(item, Mapping):
                record = dict(item)
                if "case_id" not in record:
                    # Snapshots and scores are keyed by case_id; one derived from the content gives
                    # the same dict the same id in edit() and in a later score().
                    digest = hashlib.sha1(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
                    record["case_id"] = f"api-{digest[:12]}"
                out += requests_from_records([record], name=self.cfg.dataset.name)
            else:
                raise ConfigError(f"a request must be an EditRequest or a dict, got {type(item).__name__}")
        return out

    # --- editing -----------------------------------------------------------------------
    def editor(self, method: str | None = None, **method_values: Any) -> Editor:
        """Build the editor for `method` (default: the configured one) and make it the session's.

        `method_values` override `method.*` keys; the config is recomposed with them, so
        method_model/<method>_<model>.yaml applies exactly as on the command line.
        """
        extra = ([f"method={method}"] if method else []) + to_overrides(method_values, "method.")
        cfg = compose([*self.overrides, *extra]) if extra else self.cfg
        if extra:
            self.config_warnings = config_warnings(cfg)
            check_loaded(cfg, self.lm)
        # Templates are sampled from the model as it stands, so they are drawn once per setting,
        # normally before any edit, and reused by later editors with the same setting.
        key = repr((list(cfg.method.templates.length_params), cfg.method.templates.get("grouping"), int(cfg.seed)))
        if key not in self._templates:
            self._templates[key] = context_templates(cfg, self.lm)
        self._editor = build_method(cfg, self.lm, self.stats, self._templates[key], self.originals)
        self.method_cfg = cfg
        return self._editor

    def track(self, requests: Iterable[EditRequest | Mapping]) -> list[EditRequest]:
        """Snapshot the pre-edit predictions of requests not seen yet (before any edit only)."""
        reqs = self.as_requests(requests)
        new = []
        for r in reqs:
            seen = self._tracked.get(r.case_id)
            if seen is None:
                new.append(r)
                self._tracked[r.case_id] = r
            elif seen != r:
                raise ConfigError(f"two different requests share case_id {r.case_id!r}; give each its own case_id")
        if new and self._edited:
            ids = ", ".join(r.case_id for r in new[:5])
            raise ConfigError(f"requests {ids} were first seen after an edit, so their pre-edit (locality) baseline "
                              "is lost; pass every request to session.track() or session.score() before editing")
        if new:
            if self._scorer is None:
                self._scorer = make_scorer(self.cfg, self.lm, new)
            else:
                self._scorer.snapshot_pre(new)
        return reqs

    def edit(self, requests: Iterable[EditRequest | Mapping], batch_size: int | None = None) -> list[dict]:
        """Apply the requests in steps of `batch_size` (default: the config's); one diagnostics dict per step."""
        reqs = self.track(requests)
        editor = self._editor or self.editor()
        size = int(batch_size or self.cfg.batch_size)
        if size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {size}")
        steps = []
        for start in range(0, len(reqs), size):
            self._edited = True  # set before the step: a failing step may already have written weights
            steps.append(editor.edit(reqs[start : start + size]))
        return steps

    def finalize(self) -> dict:
        """The editor's post-hoc step (PRUNE); call once after the last edit, as the runner does."""
        return self._editor.finalize() if self._editor is not None else {}

    # --- measuring ---------------------------------------------------------------------
    def score(self, requests: Iterable[EditRequest | Mapping]) -> list[dict]:
        """Reliability, generalization, locality (and ES/PS/NS where the records allow) per request."""
        reqs = self.track(requests)
        return self._scorer.score(reqs) if reqs else []

    def summary(self, requests: Iterable[EditRequest | Mapping]) -> dict:
        """The mean of each metric over the requests, as in a run's summary.json."""
        return summarize(self.score(requests))

    def pre_scores(self, requests: Iterable[EditRequest | Mapping]) -> list[dict]:
        """The scores each request had on the unedited model."""
        return [self._scorer.pre_scores[r.case_id] for r in self.track(requests)]

    def telemetry(self, layers: list[int] | None = None) -> dict[str, dict]:
        """Norms, spectrum, condition number and drift of every matrix edited so far."""
        return self._telemetry(layers)
