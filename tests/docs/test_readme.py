"""README.md cannot drift from what ``make run`` prints on a terminal, nor claim the wrong
number of queries."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from clmmd.scheduler.registry import load_registry
from tests.terminal import frames, run_under_pty

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CLMMD = Path(sys.executable).parent / "clmmd"
_RUN_ID = re.compile(r"run_\d{8}_\d{6}_[0-9a-f]{4}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _sample() -> list[str]:
    page = README.read_text()
    after = page.split("On a terminal, `make run` draws a progress bar")[1]
    block = after.split("```\n", 2)[1]
    return block.rstrip("\n").splitlines()


def _pattern(line: str) -> re.Pattern[str]:
    """The README line with its run ids and numbers made wildcards (they change every run)."""
    out, pos = [], 0
    tokens = sorted(
        [(m.start(), m.end(), r"run_\d{8}_\d{6}_[0-9a-f]{4}") for m in _RUN_ID.finditer(line)]
        + [
            (m.start(), m.end(), r"-?\d[\d,]*(?:\.\d+)?")
            for m in _NUMBER.finditer(_RUN_ID.sub(lambda r: "#" * len(r.group()), line))
        ]
    )
    for start, end, regex in tokens:
        out += [re.escape(line[pos:start]), regex]
        pos = end
    out.append(re.escape(line[pos:]))
    return re.compile("".join(out) + "$")


def test_readme_sample_is_what_make_run_prints_on_a_terminal(tmp_path: Path) -> None:
    if not CLMMD.exists():
        pytest.skip(f"the clmmd console script is not installed at {CLMMD} (make install)")
    # As `make run` does: `.venv/bin/clmmd campaign --episodes 20` from the checkout.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "clmmd").symlink_to(CLMMD)
    code, out, err = run_under_pty([".venv/bin/clmmd", "campaign", "--episodes", "20"], tmp_path)
    assert code == 0 and err == b"", err
    seen = frames(out)
    printed = [seen[-7], *seen[-6:]]  # the last bar frame, then the summary
    sample = _sample()
    assert len(sample) == len(printed), sample
    for expected, actual in zip(sample, printed, strict=True):
        assert _pattern(expected).match(actual), (expected, actual)


def test_readme_counts_the_queries_as_the_catalogue_does() -> None:
    registry = load_registry()
    text = " ".join(README.read_text().split())
    assert f"a catalogue of {len(registry.queries)} queries, {len(registry.enabled())}" in text
