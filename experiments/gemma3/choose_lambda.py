"""Issue 20's λ choice on Gemma3 from the train-split cells of issue20-cells.sh (`<prefix><method>-<value>`,
prefix `i20-lam-` for the 20-edit grid of step 1, `i20-h100-` for the check at the evaluated horizon of step 3),
by the rule of `experiments/choose.py` (README §2: the best mean of R / G / L; a tie keeps the first value in the
file's order). Prints the shell assignments that the file's 100-edit cells read, e.g. `MOSE_LAM=10 MEMIT_LAM=500
ALPHAEDIT_L2=10`; a method whose grid has unfinished cells is left out. The grid is the cells file's, not a copy.

  eval "$(python experiments/gemma3/choose_lambda.py experiments/gemma3/issue20-cells.sh experiments/gemma3/runs)"
  python experiments/gemma3/choose_lambda.py experiments/gemma3/issue20-cells.sh experiments/gemma3/runs i20-h100-
"""

from __future__ import annotations

import sys
from pathlib import Path

from experiments.choose import grid_choices

VARIABLES = {"mose": "MOSE_LAM", "memit": "MEMIT_LAM", "alphaedit": "ALPHAEDIT_L2"}


def choices(cells_file: Path, runs: Path, prefix: str = "i20-lam-") -> dict[str, str]:
    return {VARIABLES[method]: value for method, value in grid_choices(cells_file, runs, prefix).items()}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not Path(argv[0]).is_file() or not Path(argv[1]).is_dir():
        print("usage: choose_lambda.py CELLS_FILE RUNS_DIR [PREFIX] (issue20-cells.sh, the dir of its runs, and the "
              "grid's cell-name prefix: i20-lam- by default, i20-h100- for the check at the evaluated horizon)",
              file=sys.stderr)
        return 2
    print(" ".join(f"{var}={value}" for var, value in choices(Path(argv[0]), Path(argv[1]), *argv[2:]).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
