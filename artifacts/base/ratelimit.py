"""A request-rate limiter driven by the injected :class:`~service.clock.Clock`.

Dune's limits are "N requests per minute". We enforce exactly that: in any window of
``period`` seconds at most ``limit`` acquisitions are granted. It is a sliding-window log
(the times of the last ``limit`` grants), not a refilling token bucket, because a bucket of
capacity N that refills N per minute lets up to 2N requests through in one 60 s window
(a full burst, then the refill), which Dune would answer with 429s.

It reads time only from the clock, so tests can drive a simulated minute with ``FakeClock``;
aiolimiter reads the event loop's clock and cannot be driven that way.
"""

from __future__ import annotations

import asyncio
from collections import deque

from clmmd.artifacts.base.clock import Clock


class RateLimitWaitTooLong(Exception):
    """Granting the request would need waiting past the caller's deadline."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"rate limit would delay the request by {wait_s:.1f}s, past the deadline")
        self.wait_s = wait_s


class SlidingWindowLimiter:
    """At most ``limit`` grants in any ``period``-second window (default: per minute).

    Waiters are served one at a time in arrival order (the lock is fair), so one busy
    coroutine cannot starve the others.
    """

    def __init__(self, limit: int, clock: Clock, *, period: float = 60.0) -> None:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 per period, got {limit}")
        if period <= 0:
            raise ValueError(f"rate-limit period must be positive, got {period}")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._grants: deque[float] = deque()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter(limit={self.limit}, period={self.period})"

    def _forget_expired(self, now: float) -> None:
        # A grant at time g stops counting once now >= g + period (half-open window).
        while self._grants and self._grants[0] + self.period <= now:
            self._grants.popleft()

    def wait_needed(self) -> float:
        """Seconds until a grant would be possible now (0 when one is available)."""
        now = self._clock.monotonic()
        self._forget_expired(now)
        if len(self._grants) < self.limit:
            return 0.0
        return self._grants[0] + self.period - now

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait (on the clock) until a request may be sent, and count it.

        ``deadline`` is a ``clock.monotonic()`` value; if the wait would end after it,
        :class:`RateLimitWaitTooLong` is raised at once instead of sleeping in vain.
        """
        async with self._lock:
            while True:
                wait = self.wait_needed()
                if wait <= 0:
                    self._grants.append(self._clock.monotonic())
                    return
                if deadline is not None and self._clock.monotonic() + wait > deadline:
                    raise RateLimitWaitTooLong(wait)
                await self._clock.sleep(wait)
