"""Wall time per phase of an edit, for steps.jsonl and the benchmark (issue 4).

The shared machinery marks its two expensive phases, reading keys and optimising values; the
runner subtracts them from the edit's wall time to get the method's own solve. Only the
outermost phase counts when phases nest. On CUDA a phase waits for the device before it stops
the clock, so a phase is charged for the kernels it queued.
"""

from __future__ import annotations

import functools
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

_totals: dict[str, float] = defaultdict(float)
_open: list[str] = []


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Charge the wall time of the block to `name` (unless an enclosing phase is open)."""
    outer = not _open
    _open.append(name)
    start = time.perf_counter()
    try:
        yield
    finally:
        _open.pop()
        if outer:
            _sync()
            _totals[name] += time.perf_counter() - start


def timed(name: str) -> Callable:
    """Decorator form of `phase`."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with phase(name):
                return fn(*args, **kwargs)

        return inner

    return wrap


def take() -> dict[str, float]:
    """The totals since the last call, then reset."""
    out = dict(_totals)
    _totals.clear()
    return out


def clock() -> float:
    """perf_counter after the device has finished its queued work."""
    _sync()
    return time.perf_counter()


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_device_mib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
