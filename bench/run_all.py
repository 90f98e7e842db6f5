"""Run every benchmark (each in its own process) and print one table; JSON in bench/results/."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, Row, machine, print_table

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ("campaign", ["campaign.py"]),
    ("intel", ["intel.py"]),
    ("replay", ["replay.py"]),
    ("daemon", ["daemon.py"]),
    ("gym_speed", ["gym_speed.py"]),
]
# Benchmarks of the optional extras run when the extra is installed (make test-extras installs
# them); gym_train.py is a long training run of its own (docs/agent.md).
if importlib.util.find_spec("ray") is not None:
    BENCHMARKS.append(("sweep_speed", ["sweep_speed.py"]))


def main() -> int:
    rows: list[Row] = []
    failures = []
    for name, argv in BENCHMARKS:
        print(f"== {name}", flush=True)
        done = subprocess.run([sys.executable, *argv], cwd=HERE, check=False)
        if done.returncode != 0:
            failures.append(name)
            continue
        data = json.loads((RESULTS / f"{name}.json").read_text())
        rows += [Row(**r) for r in data["rows"]]
    print("\n== all benchmarks on", machine())
    print_table(rows)
    (RESULTS / "all.json").write_text(
        json.dumps(
            {"machine": machine(), "rows": [r.__dict__ for r in rows], "crashed": failures},
            indent=2,
        )
    )
    if failures:
        print(f"benchmarks that crashed: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
