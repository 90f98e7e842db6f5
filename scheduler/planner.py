"""What to refresh, in what order: pure functions of the registry, the cache state and ``now``.

A tick considers every enabled query (optionally only some priorities): global ones once,
pool-scoped ones for each of the first ``pool_cap`` active pools and each of their windows.
Keys that are fresh are left alone; missing, stale and too-old keys are planned, P0 first, then
the most stale first (age / ttl; missing counts as infinitely stale), then by key so equal
cases always come out in the same order. A key whose last attempt failed is planned again as
long as its data is not fresh.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from clmmd.artifacts.base.clock import parse_utc
from clmmd.scheduler.cache import Envelope
from clmmd.scheduler.quality import age_seconds, quality
from clmmd.scheduler.registry import (
    PRIORITIES,
    Priority,
    QuerySpec,
    Registry,
    cache_key,
    is_pool_address,
)
from clmmd.scheduler.source import FetchRequest

Reason = Literal["missing", "stale", "too_old", "forced"]


@dataclass(frozen=True)
class PlannedFetch:
    """One key to fetch and why. ``staleness`` is age / ttl (``inf`` when missing)."""

    request: FetchRequest
    spec: QuerySpec
    priority: Priority
    reason: Reason
    staleness: float

    @property
    def key(self) -> str:
        return self.request.key


def fetch_request(
    spec: QuerySpec, pool_address: str | None = None, window: str | None = None
) -> FetchRequest:
    """The :class:`FetchRequest` of one key (pool address lower-cased in key and parameters)."""
    key = cache_key(spec, pool_address, window)
    pool = pool_address.lower() if pool_address is not None else None
    parameters: dict[str, str | int | float] = {}
    if not spec.runs_shipped_sql:
        # A saved query takes its values as Dune query parameters (Dune binds them); the
        # shipped SQL is bound by scheduler.shipped_sql from pool_address and window instead.
        parameters.update(spec.parameters)
        if pool is not None and window is not None:
            parameters["pool_address"] = pool
            parameters["lookback"] = window
    return FetchRequest(
        key=key,
        query_name=spec.name,
        query_id=spec.query_id,
        method=spec.method,
        parameters=parameters,
        pool_address=pool,
        window=window,
        reexecute_after_s=spec.reexecute_after_seconds,
    )


def candidate_requests(
    registry: Registry,
    active_pools: Sequence[str],
    *,
    priorities: Iterable[str] | None = None,
    pool_cap: int = 3,
) -> list[tuple[QuerySpec, FetchRequest]]:
    """Every key a tick considers, fresh or not, in registry order."""
    wanted = _check_priorities(priorities)
    if pool_cap < 0:
        raise ValueError(f"pool_cap must be >= 0, got {pool_cap}")
    pools = _first_unique_pools(active_pools, pool_cap)
    result: list[tuple[QuerySpec, FetchRequest]] = []
    for spec in registry.enabled(wanted):
        if not spec.pool_scoped:
            result.append((spec, fetch_request(spec)))
            continue
        for pool in pools:
            for window in spec.windows:
                result.append((spec, fetch_request(spec, pool, window)))
    return result


def plan_refresh(
    registry: Registry,
    active_pools: Sequence[str],
    envelopes: Mapping[str, Envelope | None],
    now: datetime,
    *,
    priorities: set[str] | None = None,
    pool_cap: int = 3,
) -> list[PlannedFetch]:
    """The keys due for refresh, in fetch order. ``envelopes`` maps keys to the cache state."""
    planned: list[PlannedFetch] = []
    candidates = candidate_requests(
        registry, active_pools, priorities=priorities, pool_cap=pool_cap
    )
    for spec, request in candidates:
        item = _assess(spec, request, envelopes.get(request.key), now, force=False)
        if item is not None:
            planned.append(item)
    return sort_planned(planned)


def plan_pool_refresh(
    registry: Registry,
    pool_address: str,
    envelopes: Mapping[str, Envelope | None],
    now: datetime,
    *,
    priorities: Iterable[str] = ("P0", "P1"),
    force: bool = True,
) -> list[PlannedFetch]:
    """A trigger's refresh: the keys of :func:`keys_for_pool`, fresh ones too when ``force``."""
    planned = []
    for spec, request in candidate_requests(
        registry, [pool_address], priorities=priorities, pool_cap=1
    ):
        item = _assess(spec, request, envelopes.get(request.key), now, force=force)
        if item is not None:
            planned.append(item)
    return sort_planned(planned)


def keys_for_pool(
    registry: Registry, pool: str, priorities: Iterable[str] = ("P0", "P1")
) -> list[str]:
    """The cache keys a refresh trigger for ``pool`` covers: enabled queries of those
    priorities, the pool's keys for every window plus the global keys (e.g. the gas regime)."""
    return [
        r.key for _, r in candidate_requests(registry, [pool], priorities=priorities, pool_cap=1)
    ]


def sort_planned(planned: Iterable[PlannedFetch]) -> list[PlannedFetch]:
    """P0 first, then most stale first, then by key."""
    return sorted(planned, key=lambda p: (PRIORITIES.index(p.priority), -p.staleness, p.key))


def _assess(
    spec: QuerySpec, request: FetchRequest, env: Envelope | None, now: datetime, *, force: bool
) -> PlannedFetch | None:
    asof = _time(env.age_from if env is not None else None)
    q = quality(asof, spec.ttl_seconds, spec.max_age_seconds, now)
    age = None if asof is None else age_seconds(asof, now)
    staleness = math.inf if age is None else age / spec.ttl_seconds
    reason: Reason
    if q == "fresh":
        if not force:
            return None
        reason = "forced"
    else:
        reason = q
        fetched = _time(env.fetched_at if env is not None else None)
        if not force and fetched is not None and age_seconds(fetched, now) < spec.ttl_seconds:
            # We fetched it within the TTL and it was already old (a `latest` result nobody
            # re-ran): fetching again before the TTL passes would pay for the same old rows.
            return None
    return PlannedFetch(request, spec, spec.priority, reason, staleness)


def _time(stamp: str | None) -> datetime | None:
    if stamp is None:
        return None
    try:
        return parse_utc(stamp)
    except ValueError:
        return None


def _check_priorities(priorities: Iterable[str] | None) -> set[str]:
    if priorities is None:
        return set(PRIORITIES)
    wanted = set(priorities)
    unknown = sorted(wanted - set(PRIORITIES))
    if unknown:
        raise ValueError(f"unknown priority {unknown[0]!r}: expected P0, P1, P2 or P3")
    return wanted


def _first_unique_pools(active_pools: Sequence[str], cap: int) -> list[str]:
    pools: list[str] = []
    if cap == 0:
        return pools
    for pool in active_pools:
        if not is_pool_address(pool):
            raise ValueError(f"bad pool address {pool!r}: expected 0x and 40 hex digits")
        if pool.lower() not in pools:
            pools.append(pool.lower())
        if len(pools) == cap:
            break
    return pools
