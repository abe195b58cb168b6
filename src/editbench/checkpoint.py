"""Checkpoints: what a sequential run needs to continue after its last finished step (issue 8).

One safetensors file per run dir, replaced atomically (temp file + rename): the edited matrices
as they stand, the editor's state (MOSE's rotations, AlphaEdit's C_p, ...) and torch's RNG
states; the step index and the Python and NumPy RNG states ride in its metadata. A step's
records are written before its checkpoint, so a resumed run drops any record past the
checkpoint and runs those steps again: nothing finished is lost and no step appears twice.
The originals (W0) are not stored: they are the weights the model loads with.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

from editbench.errors import ConfigError
from editbench.io import read_jsonl, save_tensors, write_jsonl
from editbench.schema.check import added_later

CHECKPOINT = "checkpoint.safetensors"
RUN_CONFIG = "run_config.yaml"
SINKS = ("steps.jsonl", "edits.jsonl", "downstream.jsonl")
# Keys a resumed run may change: they do not change what is computed.
FREE_KEYS = ("resume", "threads", "debug", "logger", "checkpoint_every", "data_dir", "hydra")


@dataclass
class Checkpoint:
    step: int
    weights: dict[int, torch.Tensor]
    editor_state: dict[str, torch.Tensor]
    meta: dict


def save(run_dir: Path, step: int, editor, ctx) -> None:
    """Write the checkpoint after `step` (all of the step's records are already written)."""
    tensors = {f"weight.{layer}": ctx.spec.get_weight(ctx.model, layer).detach().cpu().contiguous().clone()
               for layer in sorted(ctx.originals)}
    tensors |= {f"editor.{k}": v.detach().cpu().contiguous().clone() for k, v in editor.state_dict().items()}
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    np_state = np.random.get_state()
    meta = {"step": step, "editor": editor.name, "python_rng": _jsonable(random.getstate()),
            "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    save_tensors(tensors, Path(run_dir) / CHECKPOINT, {"editbench": json.dumps(meta)})


def load(run_dir: Path) -> Checkpoint | None:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["editbench"])
    tensors = load_file(str(path))
    weights = {int(k.split(".")[1]): v for k, v in tensors.items() if k.startswith("weight.")}
    state = {k.removeprefix("editor."): v for k, v in tensors.items() if k.startswith("editor.")}
    meta["torch_rng"] = tensors["rng.torch"]
    meta["cuda_rng"] = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    return Checkpoint(int(meta["step"]), weights, state, meta)


def restore(ckpt: Checkpoint, editor, ctx) -> None:
    """Put the model, the editor and the RNGs back where they were after step `ckpt.step`."""
    if ckpt.meta["editor"] != editor.name:
        raise ConfigError(f"the checkpoint was written by method {ckpt.meta['editor']!r}, not {editor.name!r}")
    for layer, weight in ckpt.weights.items():
        editor.original(layer)  # W0 as loaded, before the checkpoint's weight replaces it
        ctx.spec.set_weight(ctx.model, layer, weight)
    editor.load_state_dict(ckpt.editor_state)  # CPU tensors; each editor places its own
    random.setstate(_tupled(ckpt.meta["python_rng"]))
    name, keys, *rest = ckpt.meta["numpy_rng"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(ckpt.meta["torch_rng"])
    if ckpt.meta["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt.meta["cuda_rng"])


def truncate_records(run_dir: Path, last_step: int) -> dict[str, int]:
    """Drop records of steps after `last_step` (and a torn last line); returns records dropped per sink."""
    dropped = {}
    for name in SINKS:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        records = read_jsonl(path)
        kept = [r for r in records if _record_step(r) <= last_step]
        dropped[name] = len(records) - len(kept)
        write_jsonl(path, kept)
    return dropped


def _record_step(record: dict) -> float:
    """The step a record belongs to; the after-the-loop records (finalize, final scores) count as last."""
    step = record.get("eval_step", record.get("step"))
    return float("inf") if record.get("final") or step == "finalize" else float(step)


def check_config(run_dir: Path, cfg: DictConfig) -> None:
    """Save the run's config on the first start; on resume, refuse one that would compute something else."""
    path = Path(run_dir) / RUN_CONFIG
    current = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in FREE_KEYS}
    if not path.is_file():
        OmegaConf.save(OmegaConf.create(current), path)
        return
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    # A key the schema added later at its default (or a descriptive one) changes nothing: old runs resume.
    differ = sorted(d for d in _diff(saved, current) if not (_lacks(saved, d) and added_later(current, d)))
    if differ:
        raise ConfigError(f"resume: {run_dir} was started with other settings ({', '.join(differ)}); "
                          "resume with the same overrides, or start a new run dir")


def _diff(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a.keys() | b.keys() for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _lacks(config: dict, path: str) -> bool:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return True
        node = node[part]
    return False


def _jsonable(state):
    return [_jsonable(x) for x in state] if isinstance(state, tuple | list) else state


def _tupled(state):
    return tuple(_tupled(x) for x in state) if isinstance(state, list) else state
