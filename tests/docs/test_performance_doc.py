"""docs/performance.md's table is what ``bench/docs_table.py`` renders from ``make bench``
results, and ``make bench`` fails when a target is missed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "performance.md"


def _bench(name: str) -> ModuleType:
    # The benchmarks are scripts run from bench/ (they import _common as a sibling).
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def _results(**overrides: Any) -> dict[str, Any]:
    row = {
        "name": "snapshot p99 under refresh (ms)",
        "figure": 0.1432,
        "unit": "ms",
        "target": "< 1 ms",
        "ratio": 6.98,
        "passed": True,
        "note": "5023 snapshots",
    }
    results: dict[str, Any] = {
        "started_at": "2026-12-02T08:00:00Z",
        "machine": {
            "python": "3.11.7",
            "platform": "Linux-x86_64",
            "cpus": 2,
            "processor": "x86_64",
            "load_average": [3.1, 2.0, 1.5],
        },
        "settings": {"intel": {"duration_s": 6.0, "source_latency_s": 2.0}},
        "rows": [row],
        "crashed": [],
        "exit_status": 0,
    }
    results.update(overrides)
    return results


def test_the_docs_table_is_the_scripts_rendering_of_the_results_it_carries() -> None:
    table = _bench("docs_table")
    section = table.section_of(DOC.read_text(encoding="utf-8"))
    results = table.results_of(section)
    assert table.render(results) == section, "edited by hand? run `make bench-docs`"
    # Every benchmark that ran states its settings; the machine's load is there.
    ran = {"campaign", "intel", "daemon"} - set(results["crashed"])
    assert ran <= set(results["settings"])
    assert len(results["machine"]["load_average"]) == 3
    assert "CLMMD_DURABLE_WRITES=false" in section  # the daemon benchmark says how it ran


def test_render_update_round_trip_and_a_miss_is_shown(tmp_path: Path) -> None:
    table = _bench("docs_table")
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nprose\n\n{table.BEGIN}\n{table.END}\n\n## Notes\n")
    missed = _results(exit_status=1)
    missed["rows"][0].update(passed=False, ratio=0.5)
    table.update(doc, missed)
    page = doc.read_text()
    assert page.startswith("# Performance\n\nprose\n\n") and page.endswith("\n\n## Notes\n")
    section = table.section_of(page)
    assert table.results_of(section) == missed
    assert "| snapshot p99 under refresh (ms) | 0.1432 ms | < 1 ms | 0.5 | **MISS** |" in section
    assert "`make bench` exit status: 1" in section
    assert "- `bench/intel.py`: duration_s 6.0, source_latency_s 2.0" in section
    with pytest.raises(ValueError, match="bench-table:begin"):
        table.section_of("no markers here")


def test_make_bench_exits_non_zero_on_a_miss_or_a_crash() -> None:
    run_all = _bench("run_all")
    common = _bench("_common")
    met = common.Row("a", 1.0, "ms", "< 2 ms", 2.0, True)
    missed = common.Row("b", 3.0, "ms", "< 2 ms", 0.67, False)
    info = common.Row("c", 5.0, "ms", "-", None, None)
    assert run_all.verdict([met, info], []) == (0, ["all 1 targets met"])
    status, lines = run_all.verdict([met, missed, info], [])
    assert status == 1 and lines == ["targets missed (1): b"]
    status, lines = run_all.verdict([met], ["daemon"])
    assert status == 1 and lines == ["benchmarks that crashed: daemon"]
