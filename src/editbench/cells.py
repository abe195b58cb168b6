"""The cells of an experiment, run by one resumable runner: `python -m editbench.cells <experiment>`.

The cells come from the experiment config itself: `+experiment=<name>` composed as `python -m editbench
--multirun` would, its `hydra.sweeper.params` expanded in Hydra's order (editbench.config.sweep_cells),
each cell named after the swept values that vary (`<method>-<dataset>` for Table 1; `-<model>` joins
them at scale=paper, where two models are swept). A study without an experiment config names a cells
file instead (`cell <name> <overrides...>` lines, read by bash, experiments/lambda/cells.sh); its cells
run by the same protocol:

- one `python -m editbench <overrides> threads=1 hydra.run.dir=<runs>/<name>` process per cell, its
  output appended to <runs>/<name>.log, `--jobs` at a time;
- a cell with a summary.json is done and skipped; a started one (run_config.yaml) continues after its
  last checkpoint (resume=<dir>, editbench/loop/resume.py); any other starts;
- at `--deadline` seconds the running cells get SIGINT (the run stops between steps, what it wrote
  stays and resumes next time; one still running after a grace period is killed) and no cell starts;
  SIGTERM to the runner (a batch scheduler's notice, `kill`) stops them the same way;
- the exit status is 0 when every selected cell has finished, 1 otherwise, 2 for a bad command.

This is the multirun sweep with fixed cell dirs, so a sweep cut off by the end of a session picks up
where it stopped. Run from the repo root, e.g.
    python -m editbench.cells table1 --list
    python -m editbench.cells table1 --only '^(rect|prune)-counterfact$' --jobs 3
    python -m editbench.cells table2 --skip '^mose' --deadline 3600
    python -m editbench.cells fig3 scale=paper --device cuda --runs /tmp/sweep
    python -m editbench.cells experiments/lambda/cells.sh --runs experiments/lambda/runs
    git add -f $(python -m editbench.cells table1 --records)   # keep the finished cells (`make keep`)

Run dirs are ignored by git and a machine's disk does not outlive its session here, so a table that takes
several sessions is assembled from committed records: `--records` names every file of the finished cells
except their checkpoint (the edited weights: large, and only a started cell needs it) and the W&B offline
run (a binary copy of the same steps and scores), which is all that `state` (done) and the reports read.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from editbench.checkpoint import CHECKPOINT, RUN_CONFIG
from editbench.config import CONF_DIR, sweep_cells, sweep_params
from editbench.errors import ConfigError

GRACE_SECONDS = 60.0  # after SIGINT at the deadline: a step in progress finishes its checkpoint, then exits
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Cell:
    """One run of an experiment: its dir name and the overrides of `python -m editbench`."""

    name: str
    overrides: tuple[str, ...]


# --------------------------------------------------------------------------- which cells


def experiment_cells(experiment: str, overrides: Sequence[str] = ()) -> list[Cell]:
    """The cells of conf/experiment/<experiment>.yaml's sweep (with `overrides` on every cell)."""
    if experiment not in _experiments():
        raise ConfigError(f"no experiment config '{experiment}' (conf/experiment/{experiment}.yaml); choose one "
                          f"of {', '.join(_experiments())}, or name a cells file (experiments/<study>/cells.sh)")
    argv = [f"+experiment={experiment}", *overrides]
    params, grid = sweep_params(argv), sweep_cells(argv)
    if params is None or grid is None:
        raise ConfigError(f"experiment {experiment}: its sweeper is not Hydra's basic sweeper; "
                          "this runner expands hydra.sweeper.params of the basic one only")
    # The name keys: the swept keys with more than one value as the experiment (or the command line)
    # sweeps them, so `method=mose` on the command line still names the cell mose-counterfact.
    keys = [k for k, v in params.items() if _sweeps(f"{k}={v}")] + [_split(o)[0] for o in overrides if _sweeps(o)]
    keys = list(dict.fromkeys(keys))
    names = ["-".join(re.sub(r"[^\w.+=-]", "_", dict(map(_split, cell))[k]) for k in keys) or experiment
             for cell in grid]
    if len(set(names)) != len(names):
        raise ConfigError(f"experiment {experiment}: its cells do not get distinct names ({', '.join(names)})")
    return [Cell(name, tuple(cell)) for name, cell in zip(names, grid, strict=True)]


def _sweeps(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([override])[0].is_sweep_override()


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value


def file_cells(path: Path) -> list[Cell]:
    """The `cell <name> <overrides...>` lines of a cells file, as bash reads it (its loops, arrays and
    environment knobs such as EDITS= run there); sourced from the current directory."""
    if not path.is_file():
        raise ConfigError(f"no cells file {path}; name an experiment ({', '.join(_experiments())}) or a "
                          "file of `cell <name> <overrides...>` lines")
    script = 'cell() { printf "%s\\037" "$@"; printf "\\036"; }; source "$1"'
    proc = subprocess.run(["bash", "-c", script, "cells", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"{path} failed in bash (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    cells = [Cell(fields[0], tuple(fields[1:]))
             for record in proc.stdout.split("\036") if (fields := record.split("\037")[:-1])]
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path} names a cell twice: {sorted({n for n in names if names.count(n) > 1})}")
    return cells


def _experiments() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def select(cells: list[Cell], only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Cell]:
    """The cells whose names match one of the regexes `only` (searched; none: every cell) and none of `skip`."""
    only_re = [_regex("--only", p) for p in only if p]
    skip_re = [_regex("--skip", p) for p in skip if p]
    chosen = [c for c in cells if (not only_re or any(r.search(c.name) for r in only_re))
              and not any(r.search(c.name) for r in skip_re)]
    if not chosen:
        raise ConfigError(f"no cell matches --only {list(only)} --skip {list(skip)}; the cells: "
                          + ", ".join(c.name for c in cells))
    return chosen


def _regex(option: str, pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"{option} {pattern!r} is not a regular expression ({err}); "
                          "give a Python regex over cell names, e.g. '^(rome|memit)-'") from err


# --------------------------------------------------------------------------- running them


def state(run_dir: Path) -> str:
    """done (summary.json), started (run_config.yaml: resume it) or new."""
    if (run_dir / "summary.json").is_file():
        return "done"
    return "started" if (run_dir / RUN_CONFIG).is_file() else "new"


def records(cells: Sequence[Cell], runs: Path) -> list[Path]:
    """The files of the finished cells among `cells` but their checkpoints and W&B runs, sorted: what to commit."""
    files = []
    for cell in cells:
        run_dir = runs / cell.name
        if state(run_dir) == "done":
            files += [f for f in run_dir.rglob("*") if f.is_file() and f.name != CHECKPOINT
                      and "wandb" not in f.relative_to(run_dir).parts]
    return sorted(files)


def command(cell: Cell, runs: Path, extra: Sequence[str] = (), python: str = sys.executable) -> list[str]:
    """The `python -m editbench` command of a cell: its overrides, then the runner's, then its dir."""
    run_dir = runs / cell.name
    resume = [f"resume={run_dir}"] if state(run_dir) == "started" else []
    return [python, "-m", "editbench", *cell.overrides, *extra, "threads=1", f"hydra.run.dir={run_dir}", *resume]


def run_cells(cells: Sequence[Cell], runs: Path, *, jobs: int = 2, deadline: float | None = None,
              extra: Sequence[str] = (), grace: float = GRACE_SECONDS, python: str = sys.executable,
              stop: threading.Event | None = None) -> bool:
    """Run the cells not done yet, `jobs` at a time; True when every cell has finished. At `deadline`
    seconds, or once `stop` is set, the running cells get SIGINT and no other starts."""
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    pending, running, finished = list(cells), {}, set()
    stop_at = None  # when SIGINT went out: the grace period runs from here
    killed: set[subprocess.Popen] = set()
    try:
        while pending or running:
            late = deadline is not None and time.monotonic() - start >= deadline
            if (late or (stop is not None and stop.is_set())) and stop_at is None:
                stop_at = time.monotonic()
                for proc, cell in running.items():
                    print(f"{cell.name}: {'deadline' if late else 'SIGTERM'}, stopping (it resumes next time)",
                          flush=True)
                    proc.send_signal(signal.SIGINT)
            while pending and len(running) < jobs and stop_at is None:
                cell = pending.pop(0)
                if state(runs / cell.name) == "done":
                    print(f"{cell.name}: done", flush=True)
                    finished.add(cell.name)
                    continue
                with open(runs / f"{cell.name}.log", "a") as log:
                    running[subprocess.Popen(command(cell, runs, extra, python), stdout=log,
                                             stderr=subprocess.STDOUT, env=env)] = cell
            for proc in [p for p in running if p.poll() is not None]:
                cell = running.pop(proc)
                if state(runs / cell.name) == "done":
                    finished.add(cell.name)
                    print(f"{cell.name}: finished", flush=True)
                elif stop_at is None:
                    print(f"{cell.name}: failed (exit {proc.returncode}), see {runs / cell.name}.log", flush=True)
                else:
                    print(f"{cell.name}: stopped (exit {proc.returncode}); it resumes next time", flush=True)
            if stop_at is not None:
                for cell in pending:
                    if state(runs / cell.name) == "done":
                        finished.add(cell.name)
                    print(f"{cell.name}: {'done' if cell.name in finished else 'not started (stopping)'}", flush=True)
                pending = []
                for proc, cell in running.items():
                    if time.monotonic() - stop_at > grace and proc not in killed:
                        print(f"{cell.name}: still running {grace:.0f} s after SIGINT, killed", flush=True)
                        proc.kill()
                        killed.add(proc)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:  # Ctrl-C reached the cells too (one process group): let them stop cleanly
        for proc in running:
            proc.send_signal(signal.SIGINT)
        for proc in running:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    return len(finished) == len(cells)


# --------------------------------------------------------------------------- the command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m editbench.cells", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="conf/experiment/<name> (table1, table2, fig2, fig3, fig4), or a cells file")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every cell (after its own), e.g. scale=paper")
    p.add_argument("--only", action="append", default=[], help="run only the cells whose names match this regex "
                                                               "(repeated: any of them)")
    p.add_argument("--skip", action="append", default=[], help="run all but the cells whose names match this "
                                                               "regex (repeated: any of them)")
    p.add_argument("--jobs", type=int, default=2, help="cells at a time, one torch thread each (default 2)")
    p.add_argument("--deadline", type=float, help="seconds after which running cells stop (they resume next time)")
    p.add_argument("--grace", type=float, default=GRACE_SECONDS,
                   help=f"seconds a cell may take to stop after the deadline's SIGINT (default {GRACE_SECONDS:.0f})")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda adds model.device=cuda")
    p.add_argument("--runs", type=Path, help="folder of the cell dirs (default experiments/<experiment>/runs, "
                                             "or runs/ beside a cells file)")
    p.add_argument("--list", action="store_true", help="print each selected cell's name and overrides; run nothing")
    p.add_argument("--records", action="store_true", help="print the files of the selected finished cells but "
                                                          "their checkpoints, one a line (for git add -f); run nothing")
    return p


def _attach_patterns(argv: Sequence[str]) -> list[str]:
    """`--only -conceptedit$` as `--only=-conceptedit$`: argparse takes a value that starts with "-" for an
    option (and fails with "expected one argument"), and a cell-name regex often does."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in ("--only", "--skip"):
            out[-1] += "=" + arg
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_intermixed_args(_attach_patterns(sys.argv[1:] if argv is None else argv))
    try:
        if args.jobs < 1 or (args.deadline is not None and args.deadline <= 0) or args.grace < 0:
            raise ConfigError(f"--jobs {args.jobs} --deadline {args.deadline} --grace {args.grace}: give --jobs >= 1, "
                              "--deadline > 0 and --grace >= 0")
        as_file = Path(args.experiment)
        if as_file.suffix == ".sh" or "/" in args.experiment:
            cells = [Cell(c.name, (*c.overrides, *args.overrides)) for c in file_cells(as_file)]
            default_runs = as_file.parent / "runs"
        else:
            cells = experiment_cells(args.experiment, args.overrides)
            default_runs = Path("experiments") / args.experiment / "runs"
        cells = select(cells, args.only, args.skip)
    except ConfigError as err:
        print(f"editbench.cells: error: {err}", file=sys.stderr)
        return 2
    if args.list:
        for cell in cells:
            print(cell.name + "\t" + " ".join(cell.overrides))
        return 0
    if args.records:
        for path in records(cells, args.runs or default_runs):
            print(path)
        return 0
    extra = ["model.device=cuda"] if args.device == "cuda" else []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        ok = run_cells(cells, args.runs or default_runs, jobs=args.jobs, deadline=args.deadline, extra=extra,
                       grace=args.grace, stop=stop)
    except KeyboardInterrupt:
        print("editbench.cells: interrupted; the cells stopped, and resume when this runs again", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
