"""The episode's read side: a snapshot of market intelligence taken from the cache only.

:meth:`MarketIntelligence.snapshot` never touches the network and never waits for a refresh
(stale-while-revalidate: the scheduler refreshes in the background). It is synchronous and,
with the keys in the cache's in-process mirror, takes microseconds. This module and everything
it imports stay clear of the Dune client, aiohttp and sockets (a test enforces it).

The row fields read here are the ones documented in ``scheduler/mock_source.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from clmmd.artifacts.base.clock import Clock
from clmmd.env.base import MarketInputs
from clmmd.scheduler.cache import IntelCache, QualityMeta
from clmmd.scheduler.registry import QuerySpec, Registry, cache_key, window_hours


@dataclass(frozen=True)
class IntelSnapshot:
    """Per-key quality, the inputs it was taken for, hygiene totals and usable data.

    ``data`` holds the cached data of fresh and stale keys (``None`` for too-old and missing
    ones); it is shared with the cache, so treat it as read-only.
    """

    entries: dict[str, QualityMeta]
    inputs: dict[str, Any]
    hygiene: dict[str, Any]
    data: dict[str, dict[str, Any] | None]
    keys_by_query: dict[str, str]

    def _usable_rows(self, query: str) -> Iterator[dict[str, Any]]:
        key = self.keys_by_query.get(query)
        data = self.data.get(key) if key is not None else None
        rows = data.get("rows") if data is not None else None
        if isinstance(rows, list):
            yield from (r for r in rows if isinstance(r, dict))

    def rows(self, query: str) -> list[dict[str, Any]]:
        """The usable rows of ``query`` in this snapshot (empty when absent or unusable)."""
        return list(self._usable_rows(query))

    def value(self, query: str, field: str) -> Any:
        """``field`` of the first usable row of ``query`` (e.g. ``("gas_regime", "regime")``)."""
        first = next(self._usable_rows(query), None)  # without copying the others
        return first.get(field) if first is not None else None

    def number(self, query: str, field: str, *, allow_zero: bool = False) -> float | None:
        """A finite positive number (or zero when allowed), else ``None``: not usable."""
        value = self.value(query, field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        number = float(value)
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            return None
        return number

    def market_inputs(self) -> MarketInputs:
        """Market conditions for the simulator; ``None`` where the snapshot has nothing usable.

        Worked out once per snapshot (an episode asks twice: for its view and its request);
        the snapshot never changes and the inputs are frozen, so both get the same object.
        """
        cached = self.__dict__.get("_market_inputs")
        if cached is None:
            cached = self.__dict__["_market_inputs"] = self._market_inputs()
        return cached

    def _market_inputs(self) -> MarketInputs:
        return MarketInputs(
            price_usd=self.number("pool_health_score", "price_usd"),
            volatility_daily=self.number("pool_health_score", "volatility_daily"),
            volume_usd_per_day=self.number("pool_health_score", "volume_usd_24h", allow_zero=True),
            active_liquidity_usd=self.number("pool_health_score", "active_liquidity_usd"),
            gas_price_gwei=self.number("gas_regime", "gas_price_gwei"),
            eth_price_usd=self.number("gas_regime", "eth_price_usd"),
        )

    def as_metadata_extra(self) -> dict[str, Any]:
        """What an episode's ``metadata.json`` carries under ``extra``."""
        return {
            "intel_snapshot": {k: dict(v) for k, v in self.entries.items()},
            "intel_inputs": dict(self.inputs),
            "intel_hygiene": dict(self.hygiene),
        }


#: Distinct (pool, lookback) plans kept; more means the caller varies the lookback freely.
_MAX_PLANS = 256


class MarketIntelligence:
    """Cache-only snapshots for episodes."""

    def __init__(self, cache: IntelCache, registry: Registry, clock: Clock) -> None:
        self._cache = cache
        self._registry = registry
        self._clock = clock
        self._plans: dict[tuple[str, float], list[tuple[str, str, float]]] = {}
        #: Per plan: the data objects of its last snapshot and the market inputs read from them.
        self._inputs: dict[tuple[str, float], tuple[list[Any], MarketInputs]] = {}

    def _plan(self, pool_address: str, lookback_hours: float) -> list[tuple[str, str, float]]:
        """``(query, cache key, max age)`` of every enabled query for this pool and lookback.

        The registry does not change during a process's life: worked out once per pool and
        lookback (a few of each), not once per episode.
        """
        plan = self._plans.get((pool_address, lookback_hours))
        if plan is None:
            plan = []
            for spec in self._registry.enabled():
                if spec.pool_scoped:
                    key = cache_key(spec, pool_address, closest_window(spec, lookback_hours))
                else:
                    key = cache_key(spec)
                plan.append((spec.name, key, spec.max_age_seconds))
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
                self._inputs.clear()
            self._plans[(pool_address, lookback_hours)] = plan
        return plan

    def snapshot(self, pool_address: str, pair: str, lookback_hours: float) -> IntelSnapshot:
        """Every enabled query's key for this pool (window closest to ``lookback_hours``)."""
        if lookback_hours <= 0:
            raise ValueError(f"lookback_hours must be positive, got {lookback_hours}")
        now = self._clock.now()
        entries: dict[str, QualityMeta] = {}
        data: dict[str, dict[str, Any] | None] = {}
        keys_by_query: dict[str, str] = {}
        for name, key, max_age_s in self._plan(pool_address, lookback_hours):
            data[key], entries[key] = self._cache.get_with_quality(key, now, max_age_s)
            keys_by_query[name] = key
        snapshot = IntelSnapshot(
            entries=entries,
            inputs={
                "pool_address": pool_address,
                "pair": pair,
                "lookback_hours": lookback_hours,
            },
            hygiene=hygiene(entries.values()),
            data=data,
            keys_by_query=keys_by_query,
        )
        # Market inputs depend on the usable data alone, and between two refreshes every
        # episode sees the very same objects: read once per refresh, not once per episode.
        # (The previous objects are held here, so an identity match cannot be a reused id.)
        values = list(data.values())
        known = self._inputs.get((pool_address, lookback_hours))
        if (
            known is not None
            and len(known[0]) == len(values)
            and all(a is b for a, b in zip(known[0], values, strict=True))
        ):
            snapshot.__dict__["_market_inputs"] = known[1]
            return snapshot
        self._inputs[(pool_address, lookback_hours)] = (values, snapshot.market_inputs())
        return snapshot


def closest_window(spec: QuerySpec, lookback_hours: float) -> str:
    """The window of ``spec`` closest to ``lookback_hours`` (the shorter one on a tie)."""
    return min(spec.windows, key=lambda w: (abs(window_hours(w) - lookback_hours), window_hours(w)))


def hygiene(entries: Iterable[QualityMeta]) -> dict[str, Any]:
    """Totals over quality entries; ``fresh_pct`` is 0.0 when there are none."""
    qualities = [e["quality"] for e in entries]
    total = len(qualities)
    fresh = qualities.count("fresh")
    stale = qualities.count("stale")
    return {
        "total_queries": total,
        "fresh": fresh,
        "stale": stale,
        "missing_or_too_old": total - fresh - stale,
        "fresh_pct": round(100 * fresh / total, 1) if total else 0.0,
    }
