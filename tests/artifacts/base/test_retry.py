"""The retry-delay policy shared by the Dune and Gateway clients."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from clmmd.artifacts.base.retry import backoff_delay, parse_retry_after

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def delay(retries_done: int, retry_after_s: float | None = None, seed: int = 1) -> float:
    return backoff_delay(
        retries_done,
        retry_after_s,
        base_s=1.0,
        cap_s=30.0,
        retry_after_cap_s=60.0,
        rng=random.Random(seed),
    )


@pytest.mark.parametrize(("retries_done", "ceiling"), [(0, 1.0), (1, 2.0), (3, 8.0), (10, 30.0)])
def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling(
    retries_done: int, ceiling: float
) -> None:
    draws = [delay(retries_done, seed=seed) for seed in range(200)]
    assert all(0.0 <= d <= ceiling for d in draws)
    assert max(draws) > 0.9 * ceiling and min(draws) < 0.1 * ceiling  # the whole range is used


def test_backoff_draws_once_from_the_given_rng() -> None:
    rng, twin = random.Random(7), random.Random(7)
    got = backoff_delay(2, None, base_s=0.5, cap_s=30.0, retry_after_cap_s=60.0, rng=rng)
    assert got == twin.uniform(0.0, 2.0)
    assert rng.random() == twin.random()  # nothing else was drawn


@pytest.mark.parametrize(("asked", "waited"), [(5.0, 5.0), (-3.0, 0.0), (600.0, 60.0)])
def test_retry_after_wins_clamped_to_its_own_cap(asked: float, waited: float) -> None:
    rng = random.Random(3)
    got = backoff_delay(0, asked, base_s=1.0, cap_s=30.0, retry_after_cap_s=60.0, rng=rng)
    assert got == waited
    assert rng.random() == random.Random(3).random()  # no jitter drawn


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
    ],
)
def test_retry_after_delta_seconds_and_http_dates(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [None, "", "soon", "Wed, 21 Oct 2015 07:28:00 -0000"],  # -0000: no timezone
)
def test_retry_after_absent_garbled_or_naive_is_none(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None
