"""Run every benchmark (each in its own process), print one table, exit non-zero on a miss.

JSON goes to ``bench/results/`` (``all.json`` plus one file per benchmark, each with the
machine, its load and the settings it ran with). Exit status: 0 every target met, 1 a target
was missed (a ``MISS`` row) or a benchmark crashed. ``docs_table.py`` puts the last results
into ``docs/performance.md`` (``make bench-docs``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
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


def verdict(rows: list[Row], crashed: list[str]) -> tuple[int, list[str]]:
    """The exit status and the lines that explain it."""
    missed = [r.name for r in rows if r.passed is False]
    lines = []
    if missed:
        lines.append(f"targets missed ({len(missed)}): {', '.join(missed)}")
    if crashed:
        lines.append(f"benchmarks that crashed: {', '.join(crashed)}")
    if not lines:
        targets = sum(r.passed is not None for r in rows)
        lines.append(f"all {targets} targets met")
    return (1 if missed or crashed else 0), lines


def main() -> int:
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    load_before = machine()
    rows: list[Row] = []
    settings: dict[str, object] = {}
    crashed = []
    for name, argv in BENCHMARKS:
        print(f"== {name}", flush=True)
        done = subprocess.run([sys.executable, *argv], cwd=HERE, check=False)
        if done.returncode != 0:
            crashed.append(name)
            continue
        data = json.loads((RESULTS / f"{name}.json").read_text())
        rows += [Row(**r) for r in data["rows"]]
        settings[name] = data.get("settings", {})
    print("\n== all benchmarks on", machine())
    print_table(rows)
    status, lines = verdict(rows, crashed)
    (RESULTS / "all.json").write_text(
        json.dumps(
            {
                "started_at": started,
                "machine": load_before,
                "settings": settings,
                "rows": [r.__dict__ for r in rows],
                "crashed": crashed,
                "exit_status": status,
            },
            indent=2,
        )
    )
    for line in lines:
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
