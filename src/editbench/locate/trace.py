"""A small tracing utility: read and patch module inputs/outputs during a forward pass.

In the spirit of kmeng01/memit `util/nethook.py` (Trace/TraceDict), written anew: every method
reads keys (inputs of the edited projection) and patches hidden states through this one file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch
from torch import nn

OutputEdit = Callable[[torch.Tensor], torch.Tensor]


def _first_tensor(x):
    return x[0] if isinstance(x, tuple) else x


def _replace_first(x, new):
    return (new, *x[1:]) if isinstance(x, tuple) else new


class Trace(contextlib.AbstractContextManager):
    """Hook one module for the duration of a `with` block.

    retain_input / retain_output keep the module's first positional input / output tensor
    (detached unless `detach=False`); edit_output, if given, maps the output tensor to a new one
    (used to add δ at the subject position).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        retain_input: bool = False,
        retain_output: bool = False,
        edit_output: OutputEdit | None = None,
        detach: bool = True,
    ) -> None:
        self.input: torch.Tensor | None = None
        self.output: torch.Tensor | None = None

        def hook(_module, args, output):
            if retain_input:
                self.input = args[0].detach() if detach else args[0]
            if edit_output is not None:
                output = _replace_first(output, edit_output(_first_tensor(output)))
            if retain_output:
                out = _first_tensor(output)
                self.output = out.detach() if detach else out
            return output

        self._handle = module.register_forward_hook(hook)

    def close(self) -> None:
        self._handle.remove()

    def __exit__(self, *exc) -> None:
        self.close()


class TraceDict(contextlib.ExitStack):
    """Several Traces at once, indexed by name: every read and patch of a forward pass goes through it.

    Each Trace keyword is one value for all modules or a mapping name -> value (e.g. retain_input
    for the key sites only, one edit_output per site). `stop=True` ends the forward pass right after
    the last module of `modules` has run (its trace read first): the `with` block is left there,
    quietly, so the forward call must be the block's last statement.
    """

    def __init__(self, modules: Mapping[object, nn.Module], *, stop: bool = False, **trace_kwargs) -> None:
        super().__init__()
        if stop:  # entered first, so it leaves last and catches the StopForward raised inside the block
            self.enter_context(contextlib.suppress(StopForward))

        def kwargs_of(name: object) -> dict:
            return {k: v[name] if isinstance(v, Mapping) else v for k, v in trace_kwargs.items()}

        self.traces = {name: self.enter_context(Trace(m, **kwargs_of(name))) for name, m in modules.items()}
        if stop and modules:
            self.enter_context(stop_after(list(modules.values())[-1]))

    def __getitem__(self, name: object) -> Trace:
        return self.traces[name]

    def items(self):
        return self.traces.items()


Site = tuple[int, str]  # (layer, "key" | "residual" | "mlp_out")


def site_module(spec, model: nn.Module, layer: int, kind: str) -> nn.Module:
    """The module read or patched at a site: "key" the edited down projection (its input is the key),
    "residual" the decoder block (its output), "mlp_out" the MLP (its output)."""
    if kind == "key":
        return spec.down_proj(model, layer)
    if kind == "residual":
        return spec.layer(model, layer)
    if kind == "mlp_out":
        return spec.mlp(model, layer)
    raise ValueError(f"unknown site kind {kind!r}; use 'key', 'residual' or 'mlp_out'")


def add_at_positions(
    hidden: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, vectors: torch.Tensor
) -> torch.Tensor:
    """Return hidden (B, T, d) with vectors[i] added at (rows[i], cols[i]); differentiable in vectors."""
    update = torch.zeros_like(hidden).index_put((rows, cols), vectors.to(hidden.dtype), accumulate=True)
    return hidden + update


def gather_positions(hidden: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """hidden[rows[i], cols[i]] for every i: (N, d)."""
    return hidden[rows, cols]


@contextlib.contextmanager
def frozen_prefix(layers: Iterable[nn.Module], cached_output: torch.Tensor) -> Iterator[None]:
    """Skip the given (lowest) decoder layers: each returns `cached_output` instead of computing.

    The value optimisation changes nothing below its insertion site, so the hidden state leaving
    the last frozen layer is computed once (no grad) and replayed for every optimisation step.
    This relies only on decoder blocks being called in order with the hidden state first, which
    holds for every family in ModelSpec (LLaMA, Qwen, Gemma3, GPT-2).
    """
    layers = list(layers)
    # An instance-level forward may already exist (accelerate's device_map hooks set one).
    saved = [layer.__dict__.get("forward") for layer in layers]
    try:
        for layer in layers:
            layer.forward = lambda *args, **kwargs: cached_output
        yield
    finally:
        for layer, forward in zip(layers, saved, strict=True):
            if forward is None:
                del layer.forward
            else:
                layer.forward = forward


class StopForward(Exception):
    """Raised by `stop_after` to end a forward pass once everything needed has been read."""


@contextlib.contextmanager
def stop_after(module: nn.Module) -> Iterator[None]:
    """Abort the forward pass right after `module` runs (catch StopForward around the call).

    Statistics of layer l need nothing above it: skipping the upper layers of a 30-layer model
    to collect C0 at layers 1-11 saves about two thirds of the compute.
    """

    def hook(_module, _args, _output):
        raise StopForward

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
