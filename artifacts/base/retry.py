"""The retry-delay policy shared by the Dune and Gateway HTTP clients.

Both clients retry transient failures (429, 5xx, lost connections) the same way: exponential
backoff with *full jitter*, capped, unless the server said how long to wait with
``Retry-After``, which is then honoured up to its own cap. The retry loops themselves stay in
each client because their budgets differ (Dune bounds a whole refresh by one deadline; Gateway
counts attempts per read).

This module must stay free of network imports: the intel read path imports ``scheduler``
modules and is tested to load no HTTP layer.
"""

from __future__ import annotations

import random
from datetime import datetime
from email.utils import parsedate_to_datetime


def backoff_delay(
    retries_done: int,
    retry_after_s: float | None,
    *,
    base_s: float,
    cap_s: float,
    retry_after_cap_s: float,
    rng: random.Random,
) -> float:
    """Seconds to sleep before retry number ``retries_done + 1``.

    With ``retry_after_s`` (the server's own wish) that wait, clamped to
    ``[0, retry_after_cap_s]``. Otherwise a uniform draw from ``[0, min(cap_s, base_s *
    2**retries_done)]``: full jitter spreads the retries of concurrent workers instead of
    synchronising them into bursts.
    """
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), retry_after_cap_s)
    ceiling = min(cap_s, base_s * 2.0**retries_done)
    return rng.uniform(0.0, ceiling)


def parse_retry_after(header: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now`` (timezone-aware).

    Accepts delta-seconds or an HTTP date; a date in the past or a negative number means 0.
    ``None`` when the header is absent, garbled, or a date without a timezone (which cannot
    be compared with ``now`` safely).
    """
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
