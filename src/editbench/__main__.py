"""`python -m editbench method=… model=… dataset=… num_edits=…` (Hydra)."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from editbench.config import CONF_DIR, compose, sweep_cells
from editbench.errors import ConfigError, EditbenchError
from editbench.schema.check import validate

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
        summary = run(cfg, run_dir)
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
    if hydra_cfg.mode != RunMode.MULTIRUN:
        print(next_steps(run_dir, str(cfg.logger.wandb.mode)))
    return summary


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it, quoted."""
    path = Path(path).absolute()
    try:
        path = path.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.quote(str(path))


def next_steps(run_dir: Path, wandb_mode: str = "offline") -> str:
    """The closing lines of a run: where its results are and the three commands that usually follow."""
    run, python = _shown(run_dir), Path(sys.executable or "python")
    py = _shown(python) if sys.executable else "python"
    wandb_bin = python.parent / "wandb"
    wandb = _shown(wandb_bin) if wandb_bin.is_file() else "wandb"
    note = "" if wandb_mode == "offline" else f"   (this run had logger.wandb.mode={wandb_mode})"
    return "\n".join([
        f"\nRun directory: {run}",
        "Next:",
        f"  tables: {py} -m editbench.report {run} --by method",
        f"  plots:  {py} -m editbench.report {run} --plot-norms {run}",
        f"  W&B:    {wandb} sync {run}/wandb/offline-run-*{note}",
    ])


def preflight(argv: list[str]) -> None:
    """Compose and check every cell the command would run, before Hydra starts any of them.

    A wrong type or value raises one ConfigError here, so a --multirun sweep refuses a bad cell before
    its first cell loads a model. Other config dirs/names and non-basic sweepers are left to Hydra.
    """
    from hydra._internal.utils import get_args_parser

    try:
        args, _ = get_args_parser().parse_known_args(argv)
    except SystemExit:  # a malformed command line: Hydra's own parser reports it
        return
    if args.help or args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_dir \
            or args.config_name:
        return
    if not args.multirun:
        cfg = compose(args.overrides)
        if not args.cfg:
            validate(cfg)
        return
    cells = sweep_cells(args.overrides)
    for i, cell in enumerate(cells or []):
        try:
            validate(compose(cell))
        except ConfigError as err:
            raise ConfigError(f"sweep cell {i + 1} of {len(cells)} ({' '.join(cell)}): {err}") from err


def cli() -> None:
    """The command: config errors (Hydra's composition included) print one line and exit 2."""
    argv = sys.argv[1:]
    try:
        preflight(argv)
    except ConfigError as err:
        if "debug=true" in argv:
            raise
        print(f"editbench: error: {err}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
