"""A deterministic stand-in for Dune (``INTEL_DATA_SOURCE=mock``).

Rows are seeded from the query name, pool, window and the hour of the injected clock (a stable
blake2b hash, never Python's ``hash``), so the same hour gives the same rows in every process.
Every result is ``{"rows": [...], "partial": False}`` with ``source="mock"``.

Every row has exactly the columns of its query's row model in ``scheduler/query_rows.py`` (the
same contract the shipped SQL meets; a test checks each builder against it). Value generation is
one small function per query so a regime model can replace any of them.

Prices come from ``env.base.KNOWN_POOLS`` (reference price within a few per cent).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from typing import Any

from clmmd.artifacts.base.clock import Clock
from clmmd.env.base import KNOWN_POOLS
from clmmd.scheduler.query_rows import ROW_MODELS, columns
from clmmd.scheduler.registry import window_hours
from clmmd.scheduler.source import FetchRequest, FetchResult, IntelFetchError

#: ETH price used when no known pool gives one.
_ETH_REFERENCE_USD = 3000.0
_UNKNOWN_POOL_PRICE_USD = 1000.0

Row = dict[str, Any]
_RowBuilder = Callable[[random.Random, FetchRequest], list[Row]]


def _seed(*parts: object) -> int:
    text = "|".join("" if p is None else str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _reference_price(pool_address: str | None) -> float:
    if pool_address is None:
        return _ETH_REFERENCE_USD
    spec = KNOWN_POOLS.get(pool_address.lower())
    return spec.reference_price_usd if spec else _UNKNOWN_POOL_PRICE_USD


def _fee_pips(pool_address: str | None) -> int:
    spec = KNOWN_POOLS.get((pool_address or "").lower())
    return spec.fee_pips if spec else 3000


def _hours(request: FetchRequest) -> float:
    return window_hours(request.window) if request.window else 24.0


def gas_regime_of(gas_price_gwei: float) -> str:
    """The mock's gas regime for a gas price: "low" < 15 gwei <= "normal" < 40 gwei <= "high"."""
    return "low" if gas_price_gwei < 15 else "normal" if gas_price_gwei < 40 else "high"


def _gas_regime(rng: random.Random, _: FetchRequest) -> list[Row]:
    base_fee = rng.lognormvariate(2.6, 0.6)  # median ~13 gwei, long upper tail
    gas = base_fee + rng.uniform(0.5, 3.0)
    return [
        {
            "gas_price_gwei": round(gas, 3),
            "base_fee_gwei": round(base_fee, 3),
            "eth_price_usd": round(_ETH_REFERENCE_USD * rng.uniform(0.97, 1.03), 2),
            "regime": gas_regime_of(gas),
        }
    ]


def _pool_health(rng: random.Random, req: FetchRequest) -> list[Row]:
    volume_base = 150e6 if _fee_pips(req.pool_address) <= 500 else 25e6
    tvl = rng.uniform(0.6, 1.4) * volume_base * 1.5
    return [
        {
            "pool_address": req.pool_address,
            "price_usd": round(_reference_price(req.pool_address) * rng.uniform(0.97, 1.03), 4),
            "volatility_daily": round(rng.uniform(0.02, 0.06), 5),
            "volume_usd_24h": round(volume_base * rng.uniform(0.6, 1.4), 2),
            "active_liquidity_usd": round(tvl * rng.uniform(0.2, 0.5), 2),
            "swap_count": rng.randint(50, 900),
            "health_score": round(rng.uniform(55, 98), 1),
        }
    ]


def _rebalance_hint(rng: random.Random, req: FetchRequest) -> list[Row]:
    return [
        {
            "pool_address": req.pool_address,
            "suggested_width_pct": round(rng.uniform(2.0, 12.0), 2),
            "recenter": rng.random() < 0.3,
            "confidence": round(rng.uniform(0.4, 0.95), 3),
        }
    ]


def _fee_tier_opt(rng: random.Random, req: FetchRequest) -> list[Row]:
    shares = [rng.uniform(0.05, 1.0) for _ in range(4)]
    total = sum(shares)
    volume = rng.uniform(2e7, 2e8)
    return [
        {
            "fee_pips": fee,
            "pool_address": _tier_pool(req.pool_address, fee),
            "volume_usd": round(volume * share / total, 2),
            "volume_share": round(share / total, 4),
            "fees_usd": round(volume * share / total * fee / 1e6, 2),
            "fee_apr_pct": round(rng.uniform(2.0, 40.0), 2),
        }
        for fee, share in zip((100, 500, 3000, 10000), shares, strict=True)
    ]


def _tier_pool(pool_address: str | None, fee: int) -> str:
    """The pool itself for its own tier, a stable made-up address for the others."""
    if pool_address is not None and _fee_pips(pool_address) == fee:
        return pool_address.lower()
    return "0x" + hashlib.blake2b(f"{pool_address}|{fee}".encode(), digest_size=20).hexdigest()


def _pool_swaps(rng: random.Random, req: FetchRequest) -> list[Row]:
    """Raw Swap events in the event's columns (integers as decimal strings, as Dune returns)."""
    price = _reference_price(req.pool_address)
    spec = KNOWN_POOLS.get((req.pool_address or "").lower())
    decimals_gap = (spec.decimals1 - spec.decimals0) if spec else 0
    block = 20_000_000
    rows = []
    for index in range(int(min(_hours(req), 24) * 4)):
        price *= 1 + rng.gauss(0, 0.003)
        raw_price = (
            price * 10**decimals_gap
            if spec and spec.stable_token == 1
            else 10**decimals_gap / price
        )
        sqrt_price_x96 = int(math.sqrt(raw_price) * 2**96)
        amount0 = rng.randint(-(10**21), 10**21)
        block += rng.randint(1, 30)
        rows.append(
            {
                "block_time": f"2026-01-01 {index // 4 % 24:02d}:{index % 4 * 15:02d}:00.000 UTC",
                "block_number": block,
                "log_index": rng.randint(0, 400),
                "tx_hash": "0x" + f"{rng.getrandbits(256):064x}",
                "amount0": str(amount0),
                "amount1": str(-amount0 * 3),
                "sqrt_price_x96": str(sqrt_price_x96),
                "liquidity": str(rng.randint(10**17, 10**19)),
                "tick": int(math.log(raw_price) / math.log(1.0001)),
            }
        )
    return rows


def _simple(**ranges: tuple[float, float]) -> _RowBuilder:
    """A one-row builder drawing each field uniformly from its range (int ranges: counts)."""

    def draw(rng: random.Random, lo: float, hi: float) -> float:
        if isinstance(lo, int) and isinstance(hi, int):
            return rng.randint(lo, hi)
        return round(rng.uniform(lo, hi), 5)

    def build(rng: random.Random, _: FetchRequest) -> list[Row]:
        return [{name: draw(rng, lo, hi) for name, (lo, hi) in ranges.items()}]

    return build


def _from_model(count: int) -> _RowBuilder:
    """Rows of plausible values for each column of the query's row model (offline queries)."""

    def build(rng: random.Random, req: FetchRequest) -> list[Row]:
        model = ROW_MODELS[req.query_name]
        rows = []
        for index in range(count):
            row: Row = {}
            for name, sql_type in columns(req.query_name).items():
                row[name] = _draw(rng, name, sql_type, index)
            rows.append(model.model_validate(row).model_dump(mode="json"))
        return rows

    return build


def _draw(rng: random.Random, name: str, sql_type: str, index: int) -> Any:
    if sql_type == "DOUBLE":
        return round(rng.uniform(-1.0, 1.0) if "correlation" in name else rng.uniform(0, 1e6), 5)
    if sql_type == "BIGINT":
        return rng.randint(1, 5000)
    if sql_type == "BOOLEAN":
        return rng.random() < 0.5
    if sql_type == "TIMESTAMP":
        return f"2026-01-01 {index % 24:02d}:00:00.000 UTC"
    if name.endswith("_address"):
        return "0x" + f"{rng.getrandbits(160):040x}"
    if name in ("day", "cohort_month"):
        return f"2026-01-{index % 28 + 1:02d}"
    return f"{name}_{index}"


_BUILDERS: dict[str, _RowBuilder] = {
    "gas_regime": _gas_regime,
    "pool_health_score": _pool_health,
    "rebalance_hint": _rebalance_hint,
    "toxic_flow": _simple(
        toxic_share=(0.02, 0.25),
        informed_volume_usd=(1e5, 5e6),
        volume_usd=(5e6, 5e7),
        swaps=(100, 3000),
    ),
    "mev_risk": _simple(
        sandwich_rate=(0.001, 0.05),
        sandwiched_volume_usd=(1e4, 2e6),
        sandwiched_trades=(0, 60),
        trades=(500, 8000),
    ),
    "jit_monitor": _simple(jit_share=(0.0, 0.15), jit_events=(0, 120), jit_volume_usd=(0.0, 5e6)),
    "dynamic_fee_analysis": _simple(
        fee_pips=(500, 500), volume_usd=(1e7, 3e8), fees_usd=(1e4, 3e5), fee_apr_pct=(3.0, 45.0)
    ),
    "fee_tier_opt": _fee_tier_opt,
    "liquidity_depth": _simple(
        depth_usd_1pct=(5e5, 3e7), depth_usd_2pct=(1e6, 6e7), current_tick=(195000, 205000)
    ),
    "liquidity_competition": _simple(
        lp_count=(80, 2500), top10_share=(0.3, 0.85), mints=(50, 900), burns=(40, 800)
    ),
    "range_efficiency": _simple(
        median_width_pct=(1.0, 20.0), in_range_pct=(40.0, 95.0), positions=(20, 600)
    ),
    "pool_metrics": _simple(
        volume_usd=(1e7, 3e8),
        fees_usd=(1e4, 3e5),
        swap_count=(500, 20000),
        unique_traders=(100, 4000),
        avg_trade_usd=(1e3, 5e4),
    ),
    "pool_swaps": _pool_swaps,
    "il_tracker": _simple(
        il_pct_window=(-0.5, 0.0),
        il_pct_7d=(-3.0, 0.0),
        il_pct_30d=(-8.0, 0.0),
        price_change_pct_7d=(-15.0, 15.0),
        price_change_pct_30d=(-30.0, 30.0),
    ),
}
_OFFLINE_ROWS = 5


class MockSource:
    """Deterministic plausible rows per key (implements ``scheduler.source.IntelSource``).

    ``fail`` may inject failures: called with each request, a returned string is raised as a
    retryable :class:`IntelFetchError`. ``latency_s`` waits on the injected clock per fetch.
    ``requests`` records every key asked for, in order. ``epoch`` (e.g. a campaign seed)
    replaces the clock's hour in the seed so rows do not change with time.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        fail: Callable[[FetchRequest], str | None] | None = None,
        latency_s: float = 0.0,
        epoch: int | None = None,
    ) -> None:
        self._clock = clock
        # A fixed epoch replaces the hour bucket: a seeded campaign gets the same intel
        # whatever the hour it runs in.
        self._epoch = epoch
        self._fail = fail
        self._latency_s = latency_s
        self.requests: list[str] = []

    async def fetch(self, request: FetchRequest) -> FetchResult:
        self.requests.append(request.key)
        if self._latency_s > 0:
            await self._clock.sleep(self._latency_s)
        if self._fail is not None:
            message = self._fail(request)
            if message is not None:
                raise IntelFetchError(message, retryable=True)
        return FetchResult(data=self.rows_for(request), source="mock")

    def rows_for(self, request: FetchRequest) -> dict[str, Any]:
        """The data a fetch of ``request`` returns at the clock's current hour."""
        hour_bucket = (
            self._epoch if self._epoch is not None else int(self._clock.now().timestamp() // 3600)
        )
        pool = request.pool_address.lower() if request.pool_address else None
        rng = random.Random(_seed(request.query_name, pool, request.window, hour_bucket))
        builder = _BUILDERS.get(request.query_name)
        if builder is not None:
            rows = builder(rng, request)
        elif request.query_name in ROW_MODELS:
            rows = _from_model(_OFFLINE_ROWS)(rng, request)
        else:  # an operator's own query: no known shape
            rows = [{"metric": request.query_name, "value": round(rng.uniform(0, 100), 5)}]
        return {"rows": rows, "partial": False}

    async def close(self) -> None:
        return None
