"""Paths and ids of runs and episodes under the data directory.

```
<data_dir>/runs/<run_id>/campaign.log
<data_dir>/runs/<run_id>/metrics_summary.json
<data_dir>/runs/<run_id>/episodes/<episode_id>/{proposal,metadata,result|failure,reward,timings}.json
                                               logs.jsonl
```
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from clmmd.artifacts.writer import TEMP_MARKER

RUN_ID_RE = re.compile(r"^run_\d{8}_\d{6}_[0-9a-f]{4}$")
EPISODE_ID_RE = re.compile(r"^ep_\d{6,}$")


def new_run_id(now: datetime) -> str:
    """``run_YYYYmmdd_HHMMSS_xxxx``: sorts by start time; the suffix keeps ids unique."""
    return f"run_{now.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"


def episode_id(index: int) -> str:
    """``ep_000001`` for the first episode of a run (sorts in order)."""
    if index < 1:
        raise ValueError(f"episode index starts at 1, got {index}")
    return f"ep_{index:06d}"


@dataclass(frozen=True)
class RunLayout:
    """Where one run's files live."""

    data_dir: Path
    run_id: str

    # Cached: a campaign asks for these twice an episode, and building a Path is a few
    # microseconds each time (the dataclass is frozen, so the answer never changes).
    @cached_property
    def run_dir(self) -> Path:
        return self.data_dir / "runs" / self.run_id

    @cached_property
    def episodes_dir(self) -> Path:
        return self.run_dir / "episodes"

    @property
    def campaign_log(self) -> Path:
        return self.run_dir / "campaign.log"

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "metrics_summary.json"

    @property
    def active_marker(self) -> Path:
        """Present while a process is writing this run (holds its pid)."""
        return self.run_dir / ".active"

    def episode_dir(self, episode_id: str) -> Path:
        return self.episodes_dir / episode_id

    def episode_dirs(self) -> list[Path]:
        """Finished-or-running episode folders (not staging folders), in id order."""
        if not self.episodes_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.episodes_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and TEMP_MARKER not in p.name
        )


def runs_dir(data_dir: Path) -> Path:
    return data_dir / "runs"


def list_runs(data_dir: Path) -> list[RunLayout]:
    """Every run under ``data_dir``, oldest first (run ids sort by start time).

    Hidden folders are not runs (``resolve_run`` refuses their names too), so ``latest`` never
    resolves to one and recovery never touches one.
    """
    root = runs_dir(data_dir)
    if not root.is_dir():
        return []
    return [
        RunLayout(data_dir, p.name)
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.startswith(".")
    ]


def resolve_run(data_dir: Path, run: str | None) -> RunLayout:
    """``None``/``latest`` → newest run; otherwise the named run. ``LookupError`` if absent."""
    runs = list_runs(data_dir)
    if run in (None, "latest"):
        if not runs:
            raise LookupError(f"no runs under {runs_dir(data_dir)}")
        return runs[-1]
    assert run is not None
    if "/" in run or run.startswith("."):
        raise LookupError(f"not a run id: {run!r}")
    layout = RunLayout(data_dir, run)
    if not layout.run_dir.is_dir():
        raise LookupError(f"no run {run!r} under {runs_dir(data_dir)}")
    return layout
