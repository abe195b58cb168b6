"""The demo data shipped inside the package, so that a fresh install runs without any data download.

`demo_dir()` is laid out like a data directory for the default dataset (`dataset=counterfact`):
`counterfact_easyedit_mend_format/counterfact-edit.json` holds counterfactual edits written for
editbench in EasyEdit's CounterFact schema (every true answer checked to be SmolLM2-135M's top-1
prediction, see experiments/demo/), and `stats-text.txt` is an original English text that stands
in for WikiText-2 when the C0 statistics are computed (WikiText may not be redistributed here).
The set is for smoke runs and examples: its numbers are not comparable with published results.
"""

from __future__ import annotations

import os
from pathlib import Path

STATS_FILE = "stats-text.txt"
EDIT_FILE = "counterfact_easyedit_mend_format/counterfact-edit.json"


def demo_dir() -> Path:
    """The folder holding the demo data (inside the installed package)."""
    return Path(__file__).resolve().parent


def is_demo_dir(path: str | os.PathLike | None) -> bool:
    """Whether `path` is the demo folder (so messages and summaries can say the demo set was used)."""
    if path is None:
        return False
    try:
        return Path(path).expanduser().resolve() == demo_dir()
    except OSError:
        return False
