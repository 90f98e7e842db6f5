"""Quality of a cached value at read time: the pure rules, with ``now`` passed in.

=========  ===========================
fresh      age < ttl
stale      ttl <= age < max_age
too_old    age >= max_age
missing    no entry (or no good data)
=========  ===========================

A ``fetched_at`` in the future (clock skew between hosts) counts as age 0. If ``max_age`` is not
above ``ttl`` (an envelope written under an older configuration), the ``too_old`` rule wins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

Quality = Literal["fresh", "stale", "too_old", "missing"]
QUALITIES: tuple[Quality, ...] = ("fresh", "stale", "too_old", "missing")
USABLE: frozenset[Quality] = frozenset({"fresh", "stale"})


def age_seconds(fetched_at: datetime, now: datetime) -> float:
    """Seconds since ``fetched_at``, never negative."""
    return max(0.0, (now - fetched_at).total_seconds())


def quality(fetched_at: datetime | None, ttl_s: float, max_age_s: float, now: datetime) -> Quality:
    """Classify a value fetched at ``fetched_at`` (``None``: there is no value)."""
    if fetched_at is None:
        return "missing"
    return quality_at_age(age_seconds(fetched_at, now), ttl_s, max_age_s)


def quality_at_age(age_s: float, ttl_s: float, max_age_s: float) -> Quality:
    """Classify a value that is ``age_s`` seconds old (see :func:`age_seconds`)."""
    if age_s >= max_age_s:
        return "too_old"
    if age_s < ttl_s:
        return "fresh"
    return "stale"


def is_usable(q: Quality) -> bool:
    """Fresh and stale values may inform a decision; too old and missing ones may not."""
    return q in USABLE
