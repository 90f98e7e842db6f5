"""The one injectable clock of the service.

Everything that reads time (quality of cache entries, backoff, scheduling, artifact timestamps)
takes a :class:`Clock` so tests can drive time without sleeping.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall time, monotonic time and sleeping, swappable as one unit."""

    def now(self) -> datetime:
        """Current wall-clock time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for durations and deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to.

    ``sleep`` advances the clock by the requested amount and yields once to the loop, so code
    that backs off or polls runs to completion instantly while still observing the time it
    "waited". ``slept`` records every sleep for assertions.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move wall and monotonic time forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards: {seconds}")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


def utc_iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a trailing ``Z`` (the form every artifact and envelope uses)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in clmmd is timezone-aware UTC")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def parse_utc(text: str) -> datetime:
    """Parse an ISO-8601 timestamp; a missing zone is an error, ``Z`` is accepted.

    Cached: every episode's snapshot parses the same few as-of times of the cache entries.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment.astimezone(UTC)
