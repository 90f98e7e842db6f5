from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clmmd.scheduler.quality import QUALITIES, is_usable, quality

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EPS = timedelta(microseconds=1)

ttls = st.integers(min_value=1, max_value=7 * 86400)
extra = st.integers(min_value=1, max_value=30 * 86400)


def fetched(age: timedelta) -> datetime:
    return NOW - age


@given(ttl=ttls, gap=extra)
def test_boundaries(ttl: int, gap: int) -> None:
    max_age = ttl + gap
    ttl_td, max_td = timedelta(seconds=ttl), timedelta(seconds=max_age)
    assert quality(fetched(ttl_td - EPS), ttl, max_age, NOW) == "fresh"
    assert quality(fetched(ttl_td), ttl, max_age, NOW) == "stale"
    assert quality(fetched(max_td - EPS), ttl, max_age, NOW) == "stale"
    assert quality(fetched(max_td), ttl, max_age, NOW) == "too_old"
    assert quality(fetched(max_td + EPS), ttl, max_age, NOW) == "too_old"


@given(ttl=ttls, gap=extra, ahead=st.integers(min_value=0, max_value=10**7))
def test_future_fetched_at_counts_as_age_zero(ttl: int, gap: int, ahead: int) -> None:
    assert quality(NOW + timedelta(seconds=ahead), ttl, ttl + gap, NOW) == "fresh"


@given(ttl=ttls, gap=extra)
def test_no_entry_is_missing(ttl: int, gap: int) -> None:
    assert quality(None, ttl, ttl + gap, NOW) == "missing"


@given(
    ttl=ttls,
    gap=extra,
    ages=st.lists(st.integers(min_value=0, max_value=60 * 86400), min_size=2, max_size=2),
)
def test_quality_never_improves_with_age(ttl: int, gap: int, ages: list[int]) -> None:
    younger, older = sorted(ages)
    order = ["fresh", "stale", "too_old"]
    q_young = quality(fetched(timedelta(seconds=younger)), ttl, ttl + gap, NOW)
    q_old = quality(fetched(timedelta(seconds=older)), ttl, ttl + gap, NOW)
    assert order.index(q_young) <= order.index(q_old)


def test_too_old_wins_when_max_age_is_not_above_ttl() -> None:
    assert quality(fetched(timedelta(seconds=50)), 100, 40, NOW) == "too_old"
    assert quality(fetched(timedelta(seconds=30)), 100, 40, NOW) == "fresh"


def test_usable_qualities() -> None:
    assert [q for q in QUALITIES if is_usable(q)] == ["fresh", "stale"]
