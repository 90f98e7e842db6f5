"""SlidingWindowLimiter, driven entirely by a FakeClock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.base.ratelimit import RateLimitWaitTooLong, SlidingWindowLimiter


def most_in_any_window(times: list[float], period: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - period + 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_burst_up_to_the_limit_then_waits_for_the_oldest_grant_to_expire() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, clock, period=60.0)
    start = clock.monotonic()
    for _ in range(3):
        await limiter.acquire()
    assert clock.slept == []

    clock.advance(10.0)
    await limiter.acquire()

    assert clock.slept == [50.0]  # the first grant leaves the window at start + 60
    assert clock.monotonic() - start == 60.0


async def test_wait_past_deadline_raises_without_sleeping() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, clock)
    await limiter.acquire()
    with pytest.raises(RateLimitWaitTooLong) as caught:
        await limiter.acquire(deadline=clock.monotonic() + 30.0)
    assert caught.value.wait_s == 60.0
    assert clock.slept == []
    await limiter.acquire(deadline=clock.monotonic() + 61.0)  # fits: waits 60 s
    assert clock.slept == [60.0]


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, FakeClock())
    with pytest.raises(ValueError):
        SlidingWindowLimiter(5, FakeClock(), period=0)


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=8),
    gaps=st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=60),
    workers=st.integers(min_value=1, max_value=4),
)
def test_never_more_than_limit_in_any_window(limit: int, gaps: list[float], workers: int) -> None:
    """Whatever the arrival pattern and concurrency, no window holds more than ``limit``."""

    async def scenario() -> list[float]:
        clock = FakeClock()
        limiter = SlidingWindowLimiter(limit, clock, period=60.0)
        granted: list[float] = []
        queue = list(gaps)

        async def worker() -> None:
            while queue:
                clock.advance(queue.pop())
                await limiter.acquire()
                granted.append(clock.monotonic())

        await asyncio.gather(*(worker() for _ in range(workers)))
        return granted

    granted = asyncio.run(scenario())
    assert len(granted) == len(gaps)
    assert most_in_any_window(granted, 60.0) <= limit
