"""The `method` group's schemas, one per method (conf/method/*.yaml names its own first: `- base_mose`)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from editbench.schema.rules import (
    ge,
    gt,
    key,
    layer,
    layers,
    one_of,
    pairs,
    ratio,
    real,
    warn_below,
    warn_far_from_recorded,
)

NONFINITE = one_of("skip", "abort")


@dataclass
class TemplatesConfig:
    length_params: list[list[int]] = key(pairs(), doc="context-template groups [[length, count], ...]")
    grouping: str = key(one_of("memit", "flat"))


@dataclass
class ValueConfig:
    steps: int = key(ge(1), warn=warn_below(5, "the value optimisation barely starts"), doc="Adam steps for v*/z*")
    lr: float = key(gt(0))
    weight_decay: float = key(ge(0))
    clamp_norm_factor: float = key(gt(0), doc="‖δ‖ <= factor·‖h0‖")
    kl_factor: float = key(ge(0))
    early_stop: float = key(real(), default=0.05, doc="stop below this loss (< 0: never)")


@dataclass
class MethodConfig:
    name: str = key()
    label: str = key()
    on_nonfinite: str = key(NONFINITE)
    templates: TemplatesConfig = MISSING


@dataclass
class MoseConfig(MethodConfig):
    mom2_update_weight: float = key(gt(0), warn=warn_far_from_recorded(), doc="λ")
    layer_selection: str = key(one_of("fixed", "select", "select_neighbors"))
    fixed_layers: list[int] = key(layers())
    candidate_layers: list[int] = key(layers())
    selection_steps: int = key(ge(1), warn=warn_below(2, "one step gives layer scores from the first gradient only"))
    selection_optimizer: str = key(one_of("newton", "adam"), default="newton",
                                   doc="eq. 22's δ_l: newton (to the early stop, issue 26) | adam (the earlier rule)")
    rotation: str = key(one_of("orthogonal", "special_orthogonal"), default="orthogonal")
    targets: str = key(one_of("spread", "own"), default="spread",  # issue 20's variant
                       doc="V_E^l: spread (one z*, MEMIT's spread, D2) | own (each layer's δ_l of eq. 22)")
    value: ValueConfig = MISSING


@dataclass
class MoseOftConfig(MethodConfig):
    layers: list[int] = key(layers())
    n_blocks: int = key(ge(1), doc="r, must divide the FFN width")
    coft_eps: float = key(gt(0))
    lr: float = key(gt(0))
    weight_decay: float = key(ge(0))
    steps: int = key(ge(1))
    coft_projection: str = key(one_of("per_block", "stack"), default="per_block")


@dataclass
class RomeConfig(MethodConfig):
    layers: list[int] = key(layers(count=1), doc="ROME edits one layer")
    mom2_adjustment: bool = key()
    value: ValueConfig = MISSING


@dataclass
class MemitFamilyConfig(MethodConfig):
    """What every MEMIT-family method shares: the layers and the z* optimisation."""

    layers: list[int] = key(layers())
    value: ValueConfig = MISSING


@dataclass
class MemitConfig(MemitFamilyConfig):
    mom2_update_weight: float = key(gt(0), warn=warn_far_from_recorded(), doc="λ")


@dataclass
class EmmetConfig(MemitConfig):
    update_norm_lambda: float = key(ge(0), doc="μ")
    emmet_lambda: float = key(ge(0), doc="ε")


@dataclass
class RectConfig(MemitConfig):
    keep_ratio: float = key(ratio())


@dataclass
class PruneConfig(MemitConfig):
    mode: str = key(one_of("post_hoc", "online"))
    alpha: float = key(gt(1), doc="log base")


@dataclass
class AlphaEditConfig(MemitFamilyConfig):  # no λC0: the null-space projector keeps C0's directions
    nullspace_threshold: float = key(gt(0), doc="τ")
    L2: float = key(gt(0), doc="α")
    solve_dtype: str = key(one_of("float32", "float64"))


@dataclass
class FtConfig(MethodConfig):
    layer: int = key(layer())
    lr: float = key(gt(0))
    steps: int = key(ge(1))
    norm_constraint: float = key(gt(0))
    early_stop: float = key(real())


METHODS: dict[str, type] = {"mose": MoseConfig, "mose_oft": MoseOftConfig, "rome": RomeConfig, "memit": MemitConfig,
                            "emmet": EmmetConfig, "rect": RectConfig, "prune": PruneConfig,
                            "alphaedit": AlphaEditConfig, "ft": FtConfig}
