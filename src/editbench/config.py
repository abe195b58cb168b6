"""The composed configuration outside the command line (benchmark, tests, Python API)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# The Hydra configs ship inside the package (package-data), so an installed editbench finds them
# from any working directory. Users add their own config folders on top (--config-dir, hydra.searchpath).
CONF_DIR = Path(__file__).resolve().parent / "conf"

# `${editbench.or:${resume},<default>}`: the value unless it is null or empty (oc.select returns a
# null value as it is). editbench/conf/config.yaml uses it to put a resumed run back into its own directory.
OmegaConf.register_new_resolver("editbench.or", lambda value, default: default if value in (None, "") else value,
                                replace=True)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """editbench/conf/config.yaml with Hydra overrides applied, exactly as `python -m editbench ...` sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra_compose(config_name="config", overrides=list(overrides))
