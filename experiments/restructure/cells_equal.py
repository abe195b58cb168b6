"""Issue 27, experiments/: the cells of `python -m editbench.cells <experiment>` against the cells.sh
files they replace (a one-off check, run before those files were deleted; its output is cells-equal.txt).

For each artefact: the old file sourced by bash with a `cell` function that prints (its names and
override lists), and the config each old cell composes to with the OLD tree (a `git archive` of the
commit before this change, so the YAML moves are covered too); the new runner's cells from this
tree's experiment config and the configs they compose to here. Then, cell by cell, the override
lists (order-insensitive) and the two configs (resolved, without Hydra's own node): what a run
computes with, and what resume compares (editbench/checkpoint.py: check_config).

    git archive 701898e | tar -x -C /tmp/oldtree
    PYTHONPATH=src:. python experiments/restructure/cells_equal.py /tmp/oldtree > experiments/restructure/cells-equal.txt

Exits 1 on a difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from editbench.cells import experiment_cells, file_cells
from editbench.config import compose

# Fig. 4's third mode (select_neighbors) was never a cell of fig4/cells.sh: it is Fig. 3's MOSE run, read
# from experiments/fig3/runs/mose (the Makefile's fig4 target skips it and runs that cell of fig3).
SKIPPED = {"fig4": {"select_neighbors"}}


# Run with the old tree's editbench: each old cell's overrides -> its composed config.
OLD_COMPOSE = """
import json, sys
from omegaconf import OmegaConf
from editbench.config import compose
cells = json.load(sys.stdin)
print(json.dumps({n: OmegaConf.to_container(compose(o), resolve=True) for n, o in cells.items()}))
"""


def resolved(overrides: tuple[str, ...]) -> dict:
    return OmegaConf.to_container(compose(list(overrides)), resolve=True)


def old_resolved(old_tree: Path, cells: dict[str, tuple[str, ...]]) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": f"{old_tree / 'src'}:{old_tree}"}
    out = subprocess.run([sys.executable, "-c", OLD_COMPOSE], input=json.dumps(cells), env=env, cwd=old_tree,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def diff(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(a.keys() | b.keys()) for d in diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]


def check(artefact: str, old_tree: Path) -> bool:
    old_file = old_tree / "experiments" / artefact / "cells.sh"
    old = {c.name: c.overrides for c in file_cells(old_file)}
    old_configs = old_resolved(old_tree, old)
    new = {c.name: c.overrides for c in experiment_cells(artefact) if c.name not in SKIPPED.get(artefact, ())}
    ok = set(old) == set(new)
    print(f"== {artefact}: {len(old)} cells in the old experiments/{artefact}/cells.sh, {len(new)} from conf/experiment/{artefact}.yaml"
          + (f" (not run here: {', '.join(sorted(SKIPPED[artefact]))})" if artefact in SKIPPED else "")
          + ("" if ok else f"; names differ: old only {sorted(set(old) - set(new))}, new only {sorted(set(new) - set(old))}"))
    for name in sorted(set(old) & set(new)):
        removed, added = sorted(set(old[name]) - set(new[name])), sorted(set(new[name]) - set(old[name]))
        configs = diff(old_configs[name], resolved(new[name]))
        ok &= not configs
        overrides = "same overrides" if not (removed or added) else \
            f"overrides: -{' -'.join(removed) or '(none)'}  +{' +'.join(added) or '(none)'}"
        print(f"{name:24s} {overrides}; composed config {'equal' if not configs else 'DIFFERS: ' + '; '.join(configs)}")
    return ok


def main() -> int:
    old_tree = Path(sys.argv[1])
    ok = True
    for artefact in ("table1", "table2", "fig3", "fig4"):
        ok &= check(artefact, old_tree)
    print("ALL EQUAL (names; composed configs: old cells.sh + old tree == new runner + this tree)" if ok
          else "DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
