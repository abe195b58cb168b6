"""Typed schemas of every config group, and the value rules checked before a model loads.

Each dataclass reads like the YAML it types and is registered in Hydra's ConfigStore; the YAML
files name it first in their defaults list (`- base_mose`), so Hydra checks types while it
composes (`method.mom2_update_weight=abc` fails there). Defaults stay in the YAML: a field is
MISSING here unless the YAML may lack it (keys other branches add; optional extras).

Value rules live next to each field as metadata (`key(gt(0))`): `validate(cfg)` walks the
composed config against the schemas, raises ONE ConfigError naming every bad key, its value and
the allowed range, and returns warnings for values that are legal but suspicious. Adding a key
is one line: `new_key: float = key(ge(0), doc="what it is")`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from editbench.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent / "conf"  # shipped inside the package


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """A predicate on a (resolved, plain) value, and the allowed range said in words."""

    ok: Callable[[Any, int | None], bool]  # (value, n_layers or None) -> allowed
    text: str


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)


def gt(bound: float) -> Rule:
    return Rule(lambda v, _: _num(v) and v > bound, f"> {bound}")


def ge(bound: float) -> Rule:
    return Rule(lambda v, _: _num(v) and v >= bound, f">= {bound}")


def real() -> Rule:
    return Rule(lambda v, _: _num(v), "a number (not nan)")


def ratio() -> Rule:
    return Rule(lambda v, _: _num(v) and 0 < v <= 1, "in (0, 1]")


def one_of(*choices: str) -> Rule:
    return Rule(lambda v, _: v in choices, "one of " + ", ".join(choices))


def _in_model(layer: Any, n_layers: int | None) -> bool:
    return isinstance(layer, int) and layer >= 0 and (n_layers is None or layer < n_layers)


def layer() -> Rule:
    return Rule(_in_model, "a layer index in 0..n_layers-1")


def layers(count: int | None = None) -> Rule:
    return Rule(lambda v, n: bool(v) and count in (None, len(v)) and all(_in_model(x, n) for x in v),
                f"a list of {count or 'one or more'} layer indices in 0..n_layers-1")


def pairs() -> Rule:
    return Rule(lambda v, _: bool(v) and all(len(p) == 2 and min(p) >= 1 for p in v),
                "a non-empty list of [length, count] pairs, each >= 1")


def eval_protocol() -> Rule:
    def ok(v: Any, _: int | None) -> bool:
        if isinstance(v, list):
            return bool(v) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v)
        return v in ("final", "immediate")

    return Rule(ok, "final, immediate or a non-empty list of steps >= 1 like [10,50]")


def optional(rule: Rule) -> Rule:
    return Rule(lambda v, n: v is None or rule.ok(v, n), f"null or {rule.text}")


@dataclass(frozen=True)
class Warn:
    """A legal value that is probably a mistake: (value, key, recorded values) -> message or None."""

    says: Callable[[Any, str, list[float]], str | None]


def warn_below(bound: float, why: str) -> Warn:
    return Warn(lambda v, k, _: f"{k}={v} is below {bound}: {why}" if _num(v) and v < bound else None)


def warn_far_from_recorded(factor: float = 100.0) -> Warn:
    """λ more than `factor` times away from every value conf/ records for the method."""

    def says(v: Any, k: str, recorded: list[float]) -> str | None:
        if not _num(v) or v <= 0 or not recorded or any(r / factor <= v <= r * factor for r in recorded if r > 0):
            return None
        return (f"{k}={v:g} is more than {factor:g}x away from every value recorded in conf/ for this method "
                f"({', '.join(f'{r:g}' for r in sorted(set(recorded)))}); tune it on the train split (D5)")

    return Warn(says)


def key(rule: Rule | None = None, *, warn: Warn | None = None, default: Any = MISSING, doc: str = "",
        descriptive: bool = False) -> Any:
    """A schema field: its rule, an optional warning, and (only where the YAML may lack it) a default.

    `descriptive`: the key describes something and changes no result (resume ignores it when added later).
    """
    return field(default=default, metadata={"rule": rule, "warn": warn, "doc": doc, "descriptive": descriptive})


# --------------------------------------------------------------------------- method schemas

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
    # issue 20 (mose-variants): V_E^l of the update
    targets: str = key(one_of("spread", "own"), default="spread",
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


# --------------------------------------------------------------------------- other groups


@dataclass
class ModelConfig:
    name: str = key()
    source: str = key(one_of("embedded", "gguf", "hf", "tiny", "random"))
    path: str | None = key()
    gguf_file: str | None = key()
    dtype: str = key(one_of("float32", "bfloat16", "float16"))
    device: str = key()
    device_map: Any = key()
    trust_remote_code: bool = key()
    tiny: dict[str, Any] | None = key()
    n_layers: int | None = key(optional(ge(1)), default=None, doc="decoder blocks, for checks before loading",
                                  descriptive=True)
    tokenizer: str | None = key(default=None, doc="source random with a shipped shape: a tokenizer dir (null: tiny)")


@dataclass
class DatasetConfig:
    name: str = key()
    label: str = key()
    format: str = key()
    file: str = key()
    selection: str = key(one_of("first", "random"))
    on_bad_record: str = key(one_of("error", "skip"))
    scorer: str = key(one_of("easyedit", "memit"))
    split: str | None = key(default=None)
    rome_file: str | None = key(default=None)
    setting: str | None = key(default=None)
    convention: str | None = key(default=None)


@dataclass
class DownstreamConfig:
    tasks: list[str] = key()
    n_examples: int | None = key(optional(ge(1)))
    every_k_steps: int = key(ge(0))
    batch_size: int = key(ge(1))
    max_length: int = key(ge(1))
    chat_template: bool = key()


@dataclass
class StatsConfig:
    corpus: str = key()
    n_tokens: int = key(ge(1))
    max_len: int = key(ge(1))
    batch_size: int = key(ge(1))
    dtype: str = key(one_of("float32", "float64", "bfloat16", "float16"))
    corpus_config: str | None = key(default=None, doc="a datasets corpus's config, e.g. 20220301.en")
    split: str = key(default="train", doc="a datasets corpus's split")
    text_field: str = key(default="text", doc="a datasets corpus's text column")
    n_samples: int | None = key(optional(ge(1)), default=None, doc="a datasets corpus's rows read (the references: 100000)")


@dataclass
class ScoringConfig:
    batch_size: int = key(ge(1))


@dataclass
class WandbConfig:
    mode: str = key(one_of("offline", "online", "disabled"))
    project: str = key()
    group: str | None = key()


@dataclass
class GuardConfig:
    """Thresholds of the per-step checks (editbench/guard.py)."""

    enabled: bool = key()
    residual_growth: float = key(gt(0), doc="after-spread residual / before-spread residual that warns")
    residual_floor: float = key(ge(0), doc="after-spread residual below which spread_residual_grew never warns")
    value_loss_factor: float = key(gt(0), doc="final value loss / early_stop that warns")
    max_update_ratio: float = key(gt(0), doc="one step's ‖ΔW‖_F / ‖W‖_F that warns")
    min_locality: float = key(ratio(), default=0.5, doc="mean locality of a scoring below which it warns")


@dataclass
class LoggerConfig:
    wandb: WandbConfig = MISSING


@dataclass
class Config:
    method: Any = MISSING  # typed by the chosen method's own schema (METHODS)
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    downstream: DownstreamConfig = MISSING
    seed: int = key()
    data_dir: str | None = key()
    num_edits: int | None = key(optional(ge(1)))
    num_steps: int | None = key(optional(ge(1)))
    offset: int = key(ge(0))
    batch_size: int = key(ge(1))
    eval_at: Any = key(eval_protocol())
    telemetry_every: int = key(ge(0))
    telemetry_spectra: str = key(one_of("exact", "off"), default="exact",
                                 doc="exact: a float64 SVD of every edited matrix per telemetry step; off: norms only")
    debug: bool = key()
    checkpoint_every: int = key(ge(0))
    resume: str | None = key()
    threads: int | None = key(optional(ge(1)))
    stats: StatsConfig = MISSING
    scoring: ScoringConfig = MISSING
    logger: LoggerConfig = MISSING
    scale: dict[str, Any] | None = key(default=None, doc="experiment sizes (conf/scale, +experiment=...)")
    guard: GuardConfig = MISSING


GROUPS: dict[str, type] = {"model": ModelConfig, "dataset": DatasetConfig, "downstream": DownstreamConfig}


def register() -> None:
    """Store every schema in Hydra's ConfigStore: `base_config`, `<group>/base_<name>`."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for name, schema in METHODS.items():
        cs.store(group="method", name=f"base_{name}", node=schema)
    for group, schema in GROUPS.items():
        cs.store(group=group, name=f"base_{group}", node=schema)


# --------------------------------------------------------------------------- checking a composed config


def _plain(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig):
        try:
            return OmegaConf.to_container(cfg, resolve=True)
        except Exception as err:  # an interpolation that does not resolve
            raise ConfigError(f"the config cannot be resolved: {err}") from err
    return cfg


def _walk(schema: type, node: Any, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, value, dataclass field) for every field of `schema` that `node` holds."""
    if not isinstance(node, Mapping):
        return
    for f in fields(schema):
        if f.name not in node:
            continue
        value, path = node[f.name], f"{prefix}{f.name}"
        sub = METHODS.get(str(node[f.name].get("name"))) if f.name == "method" and isinstance(value, Mapping) else None
        sub = sub or (f.type if isinstance(f.type, type) and is_dataclass(f.type) else _dataclass_named(f.type))
        if sub is not None:
            yield from _walk(sub, value, f"{path}.")
        else:
            yield path, value, f


def _dataclass_named(annotation: Any) -> type | None:
    """The dataclass an annotation names (annotations are strings under `from __future__ import annotations`)."""
    if isinstance(annotation, str):
        found = globals().get(annotation)
        return found if isinstance(found, type) and is_dataclass(found) else None
    return None


def added_later(cfg: Any, path: str) -> bool:
    """Whether key `path` of `cfg` changes nothing when a config saved before the key existed lacks it:
    a descriptive key, or one at the schema's own default (keys added with a default, e.g. method.rotation)."""
    for where, value, f in _walk(Config, _plain(cfg), ""):
        if where == path:
            return f.metadata.get("descriptive") or (f.default is not MISSING and value == f.default)
    return False


def model_layers(cfg: Any) -> int | None:
    """The model's layer count as its config knows it before loading (model.n_layers or model.tiny.n_layers)."""
    model = _plain(cfg).get("model") or {}
    n = model.get("n_layers") or (model.get("tiny") or {}).get("n_layers")
    return int(n) if isinstance(n, int) and n > 0 else None


@cache
def recorded_values(method: str, name: str) -> tuple[float, ...]:
    """Every value of method.<name> in conf/method/<method>.yaml and conf/method_model/<method>_<model>.yaml."""
    models = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    files = [CONF_DIR / "method" / f"{method}.yaml", *(CONF_DIR / "method_model" / f"{method}_{m}.yaml" for m in models)]
    values = [OmegaConf.load(p).get(name) for p in files if p.is_file()]
    return tuple(float(v) for v in values if _num(v))


def validate(cfg: Any, n_layers: int | None = None) -> list[str]:
    """Check every value rule of the composed config; return the warnings.

    Raises one ConfigError that lists each bad key with its value and the allowed range.
    `n_layers` (else the model config's own count, if it has one) bounds layer indices.
    """
    plain = _plain(cfg)
    n_layers = n_layers or model_layers(plain)
    method = str((plain.get("method") or {}).get("name"))
    errors, warnings = [], []
    for path, value, f in _walk(Config, plain, ""):
        rule, warn = f.metadata.get("rule"), f.metadata.get("warn")
        if rule is not None and not rule.ok(value, n_layers):
            text = rule.text.replace("n_layers-1", str(n_layers - 1)) if n_layers else rule.text
            doc = f" ({f.metadata['doc']})" if f.metadata.get("doc") else ""
            errors.append(f"{path}={value!r} is out of range: must be {text}{doc}")
        elif warn is not None:
            message = warn.says(value, path, list(recorded_values(method, f.name)))
            if message:
                warnings.append(message)
    if errors:
        raise ConfigError("; ".join(errors) + " (see conf/ and /work/shared/docs/methods.md for each key)"
                          if len(errors) > 1 else errors[0])
    return warnings


# --------------------------------------------------------------------------- Hydra's composition errors


def composition_message(err: BaseException) -> str | None:
    """One line for a config error Hydra or OmegaConf raised while composing; None for any other error."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else err
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        expected = _expected_type(cause)
        if expected and "convert" in str(cause.msg or ""):
            return f"{cause.full_key}={cause.value!r} is not {expected}"
        return f"{cause.full_key}: {(cause.msg or str(cause)).splitlines()[0]}"
    if isinstance(err, HydraException | OmegaConfBaseException):
        text = " ".join(str(err).split()).split(" Config search path")[0]
        return re.sub(r" base_\w+", "", text)  # the schemas are not options to choose
    return None


def _expected_type(err: Any) -> str | None:
    """'a float', 'an int', ... from the schema field the failed key names."""
    owner, name = getattr(err, "object_type", None), str(getattr(err, "key", "") or "")
    if owner is None or not is_dataclass(owner):
        return None
    words = {"float": "a float", "int": "an int", "bool": "a bool (true/false)", "str": "a string",
             "list[int]": "a list of ints", "list[str]": "a list of strings",
             "list[list[int]]": "a list of [int, int] pairs", "dict[str, Any]": "a mapping"}
    for f in fields(owner):
        if f.name == name:
            kind = str(f.type).removesuffix(" | None")
            said = words.get(kind, f"of type {kind}")
            return said + (" or null" if kind != str(f.type) else "")
    return None
