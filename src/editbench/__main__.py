"""`python -m editbench method=… model=… dataset=… num_edits=…` (Hydra)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from editbench.config import CONF_DIR
from editbench.errors import EditbenchError

# Nothing may wait for a model or data hub: this harness works offline by default.
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")

CONF = str(CONF_DIR)


@hydra.main(version_base=None, config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> dict | None:
    from editbench.runner import run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)  # = resume=<dir> when continuing a run
    if hydra_cfg.mode == RunMode.MULTIRUN and not cfg.logger.wandb.get("group"):
        cfg.logger.wandb.group = Path(hydra_cfg.sweep.dir).name  # one W&B group per sweep
    try:
        return run(cfg, run_dir)
    except KeyboardInterrupt:
        print(f"\neditbench: interrupted; finished steps are in {run_dir}. Continue with the same overrides "
              f"plus resume={run_dir}", file=sys.stderr)
        sys.exit(130)
    except EditbenchError as err:
        if cfg.get("debug"):
            raise
        logging.getLogger("editbench").error("%s", err)
        print(f"editbench: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
