"""Compare two trees of run dirs (old code, new code): edits.jsonl, steps.jsonl and summary.json, each
record with its timing, date and path fields dropped. Prints one line per run and exits 1 on a difference.

    python experiments/restructure/diff_runs.py /tmp/restructure-check/old /tmp/restructure-check/new
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# Measured, not computed: wall-clock, memory, dates and where files lie.
VOLATILE = re.compile(r"second|time|timing|date|path|phases|rss|_mib|_dir$|model_source")


def scrub(x):
    if isinstance(x, dict):
        return {k: scrub(v) for k, v in x.items() if not VOLATILE.search(k)}
    if isinstance(x, list):
        return [scrub(v) for v in x]
    return x


def records(path: Path) -> list:
    if not path.is_file():
        return ["<missing>"]
    text = path.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()] if path.suffix == ".jsonl" else [json.loads(text)]
    return [scrub(r) for r in rows]


def first_difference(a, b, where: str = "") -> str:
    if type(a) is not type(b):
        return f"{where}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}/{k}: only in {'new' if k in b else 'old'}"
            if a[k] != b[k]:
                return first_difference(a[k], b[k], f"{where}/{k}")
    if isinstance(a, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {str(a)[:120]} != {str(b)[:120]}"


def main(old: Path, new: Path) -> int:
    bad = 0
    for run in sorted(p.parent for p in old.glob("*/summary.json")):
        other = new / run.name
        if not (other / "summary.json").is_file():
            continue  # listed below as finished on one side only
        diffs = []
        for name in ("edits.jsonl", "steps.jsonl", "summary.json"):
            a, b = records(run / name), records(other / name)
            if a != b:
                diffs.append(f"{name}{first_difference(a, b)}")
        bad += bool(diffs)
        print(f"{'DIFF' if diffs else 'same'}  {run.name}" + "".join(f"\n      {d}" for d in diffs))
    missing = sorted({p.parent.name for p in new.glob("*/summary.json")} ^ {p.parent.name for p in old.glob("*/summary.json")})
    if missing:
        print("finished on one side only:", " ".join(missing))
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
