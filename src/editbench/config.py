"""The composed configuration outside the command line (benchmark, tests, Python API)."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from editbench.errors import ConfigError
from editbench.schema import CONF_DIR
from editbench.schema.composition import composition_message
from editbench.schema.run import register

# The Hydra configs (CONF_DIR) ship inside the package (package-data), so an installed editbench finds
# them from any working directory. Users add their own config folders on top (--config-dir, hydra.searchpath).
register()  # conf/*.yaml name their schemas (base_config, method/base_mose, ...) in their defaults

# `${editbench.or:${resume},<default>}`: the value unless it is null or empty (oc.select returns a
# null value as it is). editbench/conf/config.yaml uses it to put a resumed run back into its own directory.
OmegaConf.register_new_resolver("editbench.or", lambda value, default: default if value in (None, "") else value,
                                replace=True)

# The project's offline concept set (../shared/data/editbench_concepts/, ConceptEdit's record schema)
# must never read as ConceptEdit's own data, and ConceptEdit's files should say which one was read.
CONCEPT_SUBSTITUTE_DIR = "editbench_concepts/"
CONCEPT_SUBSTITUTE_LABEL = "concepts (ConceptEdit schema, not the original data)"


def concept_label(file: str) -> str:
    """dataset=conceptedit's label from `dataset.file` (`${editbench.concept_label:${.file}}`)."""
    if str(file).startswith(CONCEPT_SUBSTITUTE_DIR):
        return CONCEPT_SUBSTITUTE_LABEL
    return f"ConceptEdit ({str(file).rsplit('/', 1)[-1]})"


OmegaConf.register_new_resolver("editbench.concept_label", concept_label, replace=True)


def compose(overrides: Sequence[str] = (), *, hydra_node: bool = False) -> DictConfig:
    """editbench/conf/config.yaml with Hydra overrides applied, exactly as `python -m editbench ...` sees it.

    Types are checked while composing (editbench/schema/); a wrong one raises one ConfigError.
    `hydra_node`: keep the `hydra` node (sweeper params, run dir).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra_node)
    except Exception as err:
        message = composition_message(err)
        if message is None:
            raise
        raise ConfigError(message) from err


def sweep_params(overrides: Sequence[str]) -> dict[str, str] | None:
    """`hydra.sweeper.params` of the config the (non-sweep) overrides compose, resolved (`${scale.models}`
    becomes its value); None when the sweeper is not Hydra's basic one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    base = compose([o.input_line for o in parsed if not o.is_sweep_override()], hydra_node=True)
    sweeper = base.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = sweeper.get("params")
    return {str(k): str(v) for k, v in OmegaConf.to_container(params, resolve=True).items()} if params else {}


def sweep_cells(overrides: Sequence[str]) -> list[list[str]] | None:
    """The overrides of each job of Hydra's basic sweeper (argv sweeps and hydra.sweeper.params); None for others."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = sweep_params(overrides)
    if params is None:
        return None
    params_conf = [f"{k}={v}" for k, v in params.items()]
    return BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params_conf + list(overrides)), None)[0]
