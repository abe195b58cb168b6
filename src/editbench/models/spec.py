"""Where a loaded model's editable FFN matrices live.

:class:`ModelSpec` (built by :func:`model_spec`) says, for a loaded model, which module is the
decoder block, the MLP and the edited down projection of every layer, and reads/writes the edited
matrix in one canonical ``(d, m)`` orientation whatever the storage (GPT-2's ``Conv1D`` stores it
transposed). It is derived from the module tree and the HF config, never from the model's name.
"""

# ruff: noqa: E741  -- `l` (layer index) is the paper's notation and part of the ModelSpec API

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from editbench.errors import ModelError

SUPPORTED_FAMILIES = (
    "LLaMA / Qwen2 / Mistral / SmolLM2 (model.layers.{l}.mlp.down_proj), "
    "Gemma3 text (same names, post-FFN norm), GPT-2 (transformer.h.{l}.mlp.c_proj)"
)

# ---------------------------------------------------------------------------------------------
# ModelSpec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Where the edited matrix of each layer lives, and how to read/write it as (d, m)."""

    family: str
    n_layers: int
    hidden_size: int
    ffn_size: int
    layer_template: str
    mlp_template: str
    down_proj_template: str
    transposed: bool
    mlp_output_normed: bool
    final_logit_softcapping: float | None
    # Where mlp_output_normed: the norm applied to the MLP output before the residual add
    # (Gemma's post_feedforward_layernorm), and the offset of its gain: Gemma's RMSNorm scales
    # by (1 + weight), a LLaMA-style RMSNorm by weight (locate/normed.py maps targets through it).
    mlp_norm_template: str | None = None
    mlp_norm_gain_offset: float = 0.0

    def _check_layer(self, l: int) -> None:
        if not 0 <= l < self.n_layers:
            raise ModelError(f"layer {l} is out of range: the model has layers 0..{self.n_layers - 1}")

    def layer(self, model: nn.Module, l: int) -> nn.Module:
        self._check_layer(l)
        return model.get_submodule(self.layer_template.format(l))

    def mlp(self, model: nn.Module, l: int) -> nn.Module:
        self._check_layer(l)
        return model.get_submodule(self.mlp_template.format(l))

    def down_proj(self, model: nn.Module, l: int) -> nn.Module:
        self._check_layer(l)
        return model.get_submodule(self.down_proj_template.format(l))

    def mlp_output_norm(self, model: nn.Module, l: int) -> nn.Module:
        """The norm between the MLP output and the residual add (only where mlp_output_normed)."""
        self._check_layer(l)
        if self.mlp_norm_template is None:
            raise ModelError(f"{self.family}: the MLP output is added to the residual without a norm")
        return model.get_submodule(self.mlp_norm_template.format(l))

    def mlp_output_gain(self, model: nn.Module, l: int) -> tuple[torch.Tensor, float]:
        """(g, eps) of the MLP output's RMSNorm n(x) = g ⊙ x / sqrt(mean(x²) + eps); g in float64."""
        norm = self.mlp_output_norm(model, l)
        eps = getattr(norm, "eps", None)
        eps = getattr(norm, "variance_epsilon", 1e-6) if eps is None else eps
        return norm.weight.detach().to(torch.float64) + self.mlp_norm_gain_offset, float(eps)

    def weight_device(self, model: nn.Module, l: int) -> torch.device:
        """Where layer l's edited matrix lives (its statistics and solver state live there too)."""
        return self.down_proj(model, l).weight.device

    def weight_name(self, l: int) -> str:
        return self.down_proj_template.format(l) + ".weight"

    def get_weight(self, model: nn.Module, l: int) -> torch.Tensor:
        """The edited matrix as a detached (d, m) copy, in the parameter's dtype and device."""
        w = self.down_proj(model, l).weight.detach()
        if self.transposed:
            w = w.t()
        # contiguous_format: a clone of a transposed view would otherwise keep the transposed strides
        return w.clone(memory_format=torch.contiguous_format)

    def set_weight(self, model: nn.Module, l: int, W: torch.Tensor) -> None:
        """Copy a (d, m) matrix into the parameter in place (cast to its dtype/device)."""
        param = self.down_proj(model, l).weight
        expected = (self.hidden_size, self.ffn_size)
        if tuple(W.shape) != expected:
            raise ValueError(f"set_weight({self.weight_name(l)}): expected shape {expected} (d, m), got {tuple(W.shape)}")
        with torch.no_grad():
            param.copy_(W.t() if self.transposed else W)


def _find_layer_list(model: nn.Module) -> tuple[str, nn.ModuleList, str] | None:
    """The first ModuleList of decoder blocks that hold an editable MLP: (path, list, down_proj name)."""
    for path, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        mlp = getattr(module[0], "mlp", None)
        if mlp is None:
            continue
        for proj_name in ("down_proj", "c_proj"):
            if isinstance(getattr(mlp, proj_name, None), nn.Module) and hasattr(getattr(mlp, proj_name), "weight"):
                return path, module, proj_name
    return None


def _is_conv1d(module: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, Conv1D)


def model_spec(model: nn.Module) -> ModelSpec:
    """Derive the ModelSpec of a loaded model from its config and module tree."""
    config = getattr(model, "config", None)
    if config is None:
        raise ModelError(
            f"{type(model).__name__} has no HF config (.config); editbench edits Hugging Face causal LMs. "
            f"Supported families: {SUPPORTED_FAMILIES}."
        )
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    found = _find_layer_list(model)
    if found is None:
        raise ModelError(
            f"{type(model).__name__} (model_type {getattr(config, 'model_type', '?')!r}) has no list of decoder "
            "blocks with an '.mlp.down_proj' or '.mlp.c_proj' module, so there is no FFN down projection to edit. "
            f"Supported families: {SUPPORTED_FAMILIES}."
        )
    path, layers, proj_name = found
    block = layers[0]
    proj = getattr(block.mlp, proj_name)
    transposed = _is_conv1d(proj)
    if proj_name == "c_proj" and not transposed:
        raise ModelError(
            f"{type(model).__name__}: '{path}.0.mlp.c_proj' is a {type(proj).__name__}, expected GPT-2's Conv1D. "
            f"Supported families: {SUPPORTED_FAMILIES}."
        )
    rows, cols = proj.weight.shape
    d, m = (cols, rows) if transposed else (rows, cols)

    hidden = getattr(text_config, "hidden_size", None) or getattr(text_config, "n_embd", None)
    if hidden is not None and hidden != d:
        raise ModelError(f"{type(model).__name__}: down projection output width {d} != config hidden size {hidden}")
    n_cfg = getattr(text_config, "num_hidden_layers", None)
    if n_cfg is not None and n_cfg != len(layers):
        raise ModelError(f"{type(model).__name__}: found {len(layers)} blocks at '{path}', config says {n_cfg}")

    # Gemma-style blocks renormalise the MLP output before the residual add (stack-notes §3).
    mlp_output_normed = hasattr(block, "post_feedforward_layernorm")
    model_type = str(getattr(text_config, "model_type", ""))
    if transposed:
        family = "gpt2"
    elif mlp_output_normed:
        family = model_type.removesuffix("_text") or "gemma3"
    else:
        family = "llama"

    softcap = getattr(text_config, "final_logit_softcapping", None)
    prefix = f"{path}.{{}}"
    norm_template, gain_offset = None, 0.0
    if mlp_output_normed:
        norm = block.post_feedforward_layernorm
        if not isinstance(getattr(norm, "weight", None), torch.Tensor) or norm.weight.shape != (d,):
            raise ModelError(f"{type(model).__name__}: post_feedforward_layernorm is not an RMSNorm with a "
                             f"({d},) gain; editbench cannot map residual targets through it")
        norm_template = f"{prefix}.post_feedforward_layernorm"
        # Gemma / Gemma2 / Gemma3 RMSNorms multiply by (1 + weight) (transformers' Gemma3RMSNorm.forward)
        gain_offset = 1.0 if "Gemma" in type(norm).__name__ else 0.0
    return ModelSpec(
        family=family,
        n_layers=len(layers),
        hidden_size=int(d),
        ffn_size=int(m),
        layer_template=prefix,
        mlp_template=f"{prefix}.mlp",
        down_proj_template=f"{prefix}.mlp.{proj_name}",
        transposed=transposed,
        mlp_output_normed=mlp_output_normed,
        final_logit_softcapping=float(softcap) if softcap is not None else None,
        mlp_norm_template=norm_template,
        mlp_norm_gain_offset=gain_offset,
    )
