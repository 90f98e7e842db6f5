"""Campaign progress: a redrawn line on a terminal, plain JSON log lines everywhere else.

On a terminal (a person watching) stdout gets one line, redrawn in place::

    [##########--------------------]  12/40 episodes  3.4 ep/s  ETA 0:08  1 failed

Off a TTY (systemd, CI, a pipe) nothing is drawn; a ``campaign_progress`` log line with the
same numbers is emitted at most every ``log_every_s`` seconds and once at the end, so journald
and CI logs stay one JSON object per line. Time comes from the injected clock's monotonic
reading; the formatting is pure.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.artifacts.summary import EpisodeRecord

log = structlog.get_logger(__name__)

BAR_WIDTH = 30


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where a campaign is: episodes done of total, failures, seconds since it started."""

    done: int
    total: int
    failed: int
    elapsed_s: float

    @property
    def rate(self) -> float | None:
        """Episodes per second so far; ``None`` before anything could be measured."""
        if self.done == 0 or self.elapsed_s <= 0:
            return None
        return self.done / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far; 0 when done, ``None`` while unknown."""
        if self.done >= self.total:
            return 0.0
        rate = self.rate
        return None if rate is None else (self.total - self.done) / rate


def format_duration(seconds: float | None) -> str:
    """``75`` → ``1:15``, ``3725`` → ``1:02:05``, unknown → ``--:--``."""
    if seconds is None:
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_line(snap: ProgressSnapshot, width: int = BAR_WIDTH) -> str:
    """The progress line a terminal shows (no control characters)."""
    fraction = min(1.0, snap.done / snap.total) if snap.total > 0 else 1.0
    filled = int(fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    digits = len(str(snap.total))
    rate = "-" if snap.rate is None else f"{snap.rate:.1f}"
    line = (
        f"[{bar}] {snap.done:>{digits}}/{snap.total} episodes  {rate} ep/s  "
        f"ETA {format_duration(snap.eta_s)}"
    )
    if snap.failed:
        line += f"  {snap.failed} failed"
    return line


class CampaignProgress:
    """Feed it each finished episode (``episode_done``); call ``close`` when the campaign ends.

    ``stream`` defaults to stdout, ``interactive`` to whether ``stream`` is a terminal.
    """

    def __init__(
        self,
        total: int,
        clock: Clock,
        *,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        redraw_every_s: float = 0.1,
        log_every_s: float = 10.0,
    ) -> None:
        self.total = total
        self._clock = clock
        self._stream = stream if stream is not None else sys.stdout
        self.interactive = self._stream.isatty() if interactive is None else interactive
        self._redraw_every_s = redraw_every_s
        self._log_every_s = log_every_s
        self._started = clock.monotonic()
        self._last_emit: float | None = None
        self.done = 0
        self.failed = 0
        self._closed = False

    def snapshot(self) -> ProgressSnapshot:
        return ProgressSnapshot(
            self.done, self.total, self.failed, self._clock.monotonic() - self._started
        )

    def episode_done(self, record: EpisodeRecord) -> None:
        """Count one finished episode and show progress if it is time to."""
        self.done += 1
        if record.status != "success":
            self.failed += 1
        now = self._clock.monotonic()
        every = self._redraw_every_s if self.interactive else self._log_every_s
        finished = self.done >= self.total
        if finished or self._last_emit is None or now - self._last_emit >= every:
            self._last_emit = now
            self._emit(self.snapshot())

    def close(self) -> None:
        """End the terminal line (once); off a TTY there is nothing to close."""
        if self._closed:
            return
        self._closed = True
        if self.interactive and self.done:
            self._stream.write("\n")
            self._stream.flush()

    def _emit(self, snap: ProgressSnapshot) -> None:
        if self.interactive:
            # \r + erase-line redraws in place; a narrower line leaves no stale characters.
            self._stream.write("\r\x1b[K" + format_line(snap))
            self._stream.flush()
            return
        log.info(
            "campaign_progress",
            done=snap.done,
            total=snap.total,
            failed=snap.failed,
            eps_per_s=None if snap.rate is None else round(snap.rate, 3),
            eta_s=None if snap.eta_s is None else round(snap.eta_s, 1),
        )
