"""General abilities of the (edited) model: RTE, SST-2, NQ, SAMSum, and GLUE log-likelihood variants.

The public API the runner calls (methods.md D12):

    scores = evaluate_downstream(model, tokenizer, data_dir, ["rte", "sst2", "nq", "samsum"], n_examples=100)
    retention(scores, baseline_scores)   # score / pre-edit score per task ("retains 95.73%")

Each task runs through lm-eval (``simple_evaluate``) on the in-memory model, wrapped by ``HFLM``;
task definitions, prompts and their sources are in ``evaluation/tasks.py``, metrics in
``evaluation/metrics.py``. One ``simple_evaluate`` call per task, so every task gets its own time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

# Nothing here needs the hub: data is passed in memory and the model is already loaded. Set before
# lm-eval / datasets are imported so that no lookup waits on a network (stack-notes §4).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from editbench.errors import ConfigError  # noqa: E402
from editbench.io import read_json, write_json  # noqa: E402
from evaluation.data import load_docs  # noqa: E402
from evaluation.tasks import SPECS, TaskSpec, lm_eval_config  # noqa: E402

TASKS = ("rte", "sst2", "nq", "samsum", "rte_ll", "sst2_ll")

Result = dict[str, float | int | str | bool]


def evaluate_downstream(
    model: Any,
    tokenizer: Any,
    data_dir: Path,
    tasks: Sequence[str],
    n_examples: int | None,
    *,
    batch_size: int = 8,
    max_length: int = 1024,
    seed: int = 0,
    chat_template: bool = False,
    cache: tuple[str, Path] | None = None,
) -> dict[str, Result]:
    """Score ``model`` on ``tasks``; returns ``{task: {"score": main metric, <metrics>..., "n", "seconds", ...}}``.

    ``n_examples``: the first N documents of each file (None = all). ``chat_template``: wrap each
    prompt in the tokenizer's chat template (lm-eval ``apply_chat_template``); off by default,
    because the papers prompt the raw model. ``seed`` seeds lm-eval's RNGs (decoding is greedy,
    and the subsets are first-N, so it changes nothing today; it is recorded for completeness).
    Extra keys per task: ``prompt_hash`` (template + decoding settings), ``data_hash`` (the file),
    ``truncated`` (fraction of prompts longer than the context budget, left-truncated by lm-eval),
    ``empty`` (generation tasks: fraction of empty generations), ``parse_fail`` (RTE / SST-2).

    ``cache = (weights_id, dir)``: reuse (and store) each task's result for these exact weights, data,
    prompt and settings. Only for weights that a fingerprint identifies, i.e. the unedited model
    (every run of a sweep scores the same pre-edit model first); results read back say ``cached``.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"unknown downstream task(s) {unknown}; valid tasks are {list(TASKS)}")
    if n_examples is not None and (isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1):
        raise ConfigError(f"downstream.n_examples must be a positive integer or null (all), got {n_examples!r}")
    if chat_template and not getattr(tokenizer, "chat_template", None):
        raise ConfigError("downstream.chat_template=true, but this tokenizer has no chat template")
    if not tasks:
        return {}

    data_dir = Path(data_dir).expanduser()
    # Read every file before touching the model, so a missing file fails at once.
    loaded = {name: load_docs(SPECS[name].reader, data_dir / SPECS[name].file, n_examples) for name in tasks}
    max_length = _context_length(model, max_length)
    was_training = bool(getattr(model, "training", False))
    _quiet_lm_eval()
    lm = _wrap(model, tokenizer, batch_size, max_length)  # HFLM calls model.eval(); restored below
    results: dict[str, Result] = {}
    try:
        for name in tasks:
            spec = SPECS[name]
            docs, data_hash = loaded[name]
            key = {"weights": cache[0], "task": name, "n": len(docs), "prompt_hash": spec.prompt_hash,
                   "data_hash": data_hash, "max_length": max_length, "batch_size": batch_size, "seed": seed,
                   "chat_template": bool(chat_template)} if cache else None
            stored = _cached(cache[1], key) if cache else None
            if stored is not None:
                results[name] = {**stored, "cached": True}
                continue
            config = lm_eval_config(spec, docs, tokenizer)
            start = time.perf_counter()
            raw = _run(lm, config, seed=seed, chat_template=chat_template)["results"][config["task"]]
            seconds = time.perf_counter() - start
            results[name] = {
                **_metrics(spec, raw),
                "n": len(docs),
                "seconds": round(seconds, 3),
                "truncated": _truncated_fraction(spec, docs, tokenizer, max_length),
                "prompt_hash": spec.prompt_hash,
                "data_hash": data_hash,
                "chat_template": bool(chat_template),
            }
            if cache:
                write_json(_cache_file(cache[1], key), results[name])
    finally:
        if was_training:
            model.train()
    return results


def _cache_file(root: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return Path(root) / f"{key['task']}-{digest}.json"


def _cached(root: Path, key: dict) -> Result | None:
    path = _cache_file(root, key)
    return read_json(path) if path.is_file() else None  # NaN (RTE with no parsed answer) comes back as NaN


def retention(scores: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, float]:
    """score / pre-edit score for every task in both; NaN where either is missing, NaN or the baseline is 0.

    Accepts the dicts ``evaluate_downstream`` returns (``{task: {"score": ...}}``) or plain ``{task: score}``.
    """
    out = {}
    for task in scores:
        if task not in baseline:
            continue
        now, before = _score_of(scores[task]), _score_of(baseline[task])
        out[task] = now / before if _finite(now) and _finite(before) and before != 0 else math.nan
    return out


# --- helpers ----------------------------------------------------------------------------------------


def _score_of(value: Any) -> float | None:
    return value.get("score") if isinstance(value, Mapping) else value


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _context_length(model: Any, max_length: int) -> int:
    """max_length, capped by the model's position table (a tiny test model has 512 positions)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return min(max_length, limit) if isinstance(limit, int) else max_length


def _wrap(model: Any, tokenizer: Any, batch_size: int, max_length: int) -> Any:
    from lm_eval.models.huggingface import HFLM

    # HFLM takes the device from the model; wrapping is cheap, and a fresh wrapper per call means no
    # state survives from before an edit (stack-notes §4: reuse would also work).
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)


@lru_cache(maxsize=1)
def _task_manager() -> Any:
    from lm_eval.tasks import TaskManager

    # include_defaults=False: indexing lm-eval's built-in tasks costs ~11 s and we use none of them.
    return TaskManager(include_defaults=False)


def _run(lm: Any, config: dict[str, Any], *, seed: int, chat_template: bool, log_samples: bool = False) -> dict:
    """One task through lm-eval's ``evaluate``; returns lm-eval's output dict (``results``, ``samples``...).

    ``evaluate`` rather than ``simple_evaluate``: the latter adds environment info on every call
    (torch's ``collect_env`` runs ``pip list`` and ``git`` in subprocesses, ~2 s per call here),
    which the runner would pay for every task every k steps. What else ``simple_evaluate`` does
    for us is three lines: load the task, default num_fewshot to 0, seed.
    """
    from lm_eval.evaluator import evaluate

    _quiet_lm_eval()
    with _rng_preserved():
        _seed_everything(seed)
        loaded = _task_manager().load([config])
        for task in loaded["tasks"].values():
            task.set_config(key="num_fewshot", value=0)  # zero-shot, as in the papers
            task.set_fewshot_seed(seed=seed)
        return evaluate(lm=lm, task_dict=loaded, bootstrap_iters=0, log_samples=log_samples,
                        apply_chat_template=chat_template, fewshot_as_multiturn=False)


def _quiet_lm_eval() -> None:
    """lm-eval logs several INFO/WARNING lines per call, and the runner calls us every k steps.

    Only when nobody configured the "lm_eval" logger: a user who set a level keeps it.
    """
    lm_logger = logging.getLogger("lm_eval")
    if lm_logger.level == logging.NOTSET:
        lm_logger.setLevel(logging.ERROR)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def _rng_preserved() -> Iterator[None]:
    """Restore the python, numpy and torch (CPU and CUDA) RNG states afterwards.

    Seeding inside an evaluation must not reset the random streams of the editing run it
    interrupts: with eval every k steps, edits after step k would otherwise depend on k.
    """
    import numpy as np
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _metrics(spec: TaskSpec, raw: Mapping[str, Any]) -> dict[str, float]:
    """lm-eval's "metric,filter" keys -> plain metric names, main metric first as "score"."""
    values = {}
    for key, value in raw.items():
        metric, _, _ = key.partition(",")
        if metric in spec.metrics:
            values[metric] = float(value)
    return {"score": values[spec.main_metric], **values}


def _truncated_fraction(spec: TaskSpec, docs: list[dict], tokenizer: Any, max_length: int) -> float:
    """Fraction of prompts that do not fit max_length with their answer (lm-eval cuts them on the left).

    Counted on the raw prompt, so with chat_template=true it is a lower bound.
    """
    if spec.output_type == "generate_until":
        reserve = spec.max_gen_toks
    else:
        reserve = max(len(tokenizer(" " + c, add_special_tokens=False)["input_ids"]) for c in spec.choices)
    lengths = [len(ids) for ids in tokenizer([spec.render(d) for d in docs])["input_ids"]]
    return sum(n + reserve > max_length for n in lengths) / max(1, len(lengths))
