"""What can make a running daemon unable to do its work, checked for real.

:class:`DiskProbe` writes a few bytes under ``runs/`` and asks the cache for a write and a read
(blocking: the daemon runs it in a worker thread every :data:`PROBE_INTERVAL_S` and whenever an
episode is lost). :class:`LostEpisodes` keeps the count of episodes that could not even get a
folder, by reason, and whether the latest episode was one of them. Both feed ``/healthz``,
``/metrics`` and ``/status`` through :mod:`service.host.status`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from clmmd.scheduler.cache import IntelCache
from clmmd.service.runs.losses import LOST_REASONS, describe, lost_reason

#: Seconds between disk probes while serving.
PROBE_INTERVAL_S = 10.0
PROBE_NAME = ".health-probe"


class DiskProbe:
    """Checks that ``runs/`` takes a write and the cache a write and a read."""

    def __init__(self, runs_dir: Path, cache: IntelCache | None) -> None:
        self.runs_dir = runs_dir
        self.cache = cache
        self.problems: dict[str, str] = {}

    def check(self) -> dict[str, str]:
        """Run the checks now (blocking); returns and keeps ``{check: problem}``."""
        problems: dict[str, str] = {}
        try:
            self._write_probe()
        except OSError as exc:
            problems["runs"] = f"runs/ not writable: {describe(exc)}"
        if self.cache is not None:
            try:
                self.cache.probe()
            except Exception as exc:
                problems["cache"] = f"cache unusable: {describe(exc)}"
        self.problems = problems
        return problems

    def _write_probe(self) -> None:
        # One fixed hidden name (the data dir has one owner): a kill mid-probe leaves one small
        # file that the next probe reuses. A full disk refuses the bytes, not the open.
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        path = self.runs_dir / PROBE_NAME
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, b"clmmd health probe\n" * 64)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)


@dataclass
class LostEpisodes:
    """Episodes that ended without a folder, by reason; ``losing`` while the latest did."""

    by_reason: Counter[str] = field(default_factory=Counter)
    losing: bool = False
    last_error: str | None = None

    def lost(self, exc: BaseException) -> str:
        reason = lost_reason(exc)
        self.by_reason[reason] += 1
        self.losing = True
        self.last_error = describe(exc)
        return reason

    def saved(self) -> None:
        """An episode got its folder again."""
        self.losing = False

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def as_dict(self) -> dict[str, int]:
        return {reason: self.by_reason.get(reason, 0) for reason in LOST_REASONS}


__all__ = ["PROBE_INTERVAL_S", "DiskProbe", "LostEpisodes"]
