"""Table 2's batch λ, chosen on the CounterFact train split at batch size 10 (lambda-cells.sh: `emmet-<λ>`,
`alphaedit-<L2>`) by the rule of `experiments/choose.py` (the best mean of R / G / L after the last step), and
written where Table 2 reads it: the key's line in conf/method_model_batch/<method>_smollm2-135m.yaml, with the
file's "NOT YET RUN" line replaced by the choice and its source. A method with unfinished cells is left as it is.

  python experiments/table2/choose_lambda.py experiments/table2/lambda-cells.sh experiments/table2/lambda/runs
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from experiments.choose import grid_choices

KEYS = {"emmet": "mom2_update_weight", "alphaedit": "L2"}  # the swept key of each method's cells
CONF = Path(__file__).resolve().parents[2] / "src" / "editbench" / "conf" / "method_model_batch"
MODEL = "smollm2-135m"


def write_choice(path: Path, key: str, value: float, cells_file: Path) -> None:
    text = path.read_text()
    line = re.compile(rf"^{re.escape(key)}: .*$", re.M)
    if len(line.findall(text)) != 1:
        raise ValueError(f"{path}: expected one '{key}:' line to replace")
    text = line.sub(f"{key}: {value!r}", text)
    text = re.sub(r"^# NOT YET RUN.*$", f"# Chosen by experiments/table2/choose_lambda.py over {cells_file.name}'s "
                  "finished cells (best mean of R / G / L).", text, flags=re.M)
    path.write_text(text)


def main(argv: list[str], conf: Path = CONF) -> int:
    if len(argv) != 2 or not Path(argv[0]).is_file() or not Path(argv[1]).is_dir():
        print("usage: choose_lambda.py CELLS_FILE RUNS_DIR (lambda-cells.sh and the dir of its runs)", file=sys.stderr)
        return 2
    cells_file = Path(argv[0])
    for method, value in grid_choices(cells_file, Path(argv[1])).items():
        write_choice(conf / f"{method}_{MODEL}.yaml", KEYS[method], float(value), cells_file)
        print(f"{method}: {KEYS[method]} = {float(value):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
