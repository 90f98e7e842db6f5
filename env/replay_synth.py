"""Pool-consistent synthetic Swap histories, made by :class:`env.v3_pool.V3Pool`.

For benchmarks and tests that need a large history without a Dune key: every event is what
the real pool would emit for that swap (the model is checked against the bytecode), so the
replay treats them exactly like real events. The market itself is invented: a few liquidity
providers around the opening price, swaps of log-normal USD size at Poisson times, pulled back
towards the opening price so long histories stay within the providers' ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clmmd.env.base import PoolSpec
from clmmd.env.history import SwapHistory, make_history
from clmmd.env.pricing import raw_price_from_usd, token_usd_prices
from clmmd.env.uniswap_math import get_sqrt_ratio_at_tick, price_to_tick, usable_tick_bounds
from clmmd.env.v3_pool import V3Pool

#: 2024-05-01T00:00:00Z, a default start for synthetic histories.
DEFAULT_START_TIME = 1_714_521_600


@dataclass(frozen=True)
class SyntheticMarket:
    """Knobs of :func:`synthetic_history` (defaults: a busy month of a 0.05 % pool)."""

    swaps: int = 200_000
    start_time: int = DEFAULT_START_TIME
    seconds_per_swap: float = 13.0  # 200,000 swaps ≈ 30 days
    median_swap_usd: float = 3_000.0
    swap_size_sigma: float = 1.6
    providers: int = 12
    liquidity_usd: float = 40_000_000.0  # spread over the providers' ranges
    seed: int = 1


def synthetic_history(pool: PoolSpec, market: SyntheticMarket = SyntheticMarket()) -> SwapHistory:
    """A history of ``market.swaps`` Swap events (row 0 is a tiny swap that opens it)."""
    rng = np.random.Generator(np.random.PCG64(market.seed))
    spacing = pool.tick_spacing
    centre = price_to_tick(raw_price_from_usd(pool, pool.reference_price_usd))
    v3 = V3Pool(get_sqrt_ratio_at_tick(centre), pool.fee_pips, spacing)
    low_bound, high_bound = usable_tick_bounds(spacing)
    v3.mint("full-range", low_bound, high_bound, _liquidity(pool, market.liquidity_usd * 0.05))
    for k in range(market.providers):
        half_width = int(rng.integers(20, 400)) * spacing
        offset = int(rng.integers(-100, 100)) * spacing
        lower = max(low_bound, (centre + offset - half_width) // spacing * spacing)
        upper = min(high_bound, (centre + offset + half_width) // spacing * spacing)
        share = market.liquidity_usd * 0.95 / market.providers
        # A range's liquidity is its USD value over the value of one unit across the range.
        unit = _unit_value_usd(pool, centre, lower, upper)
        v3.mint(f"lp{k}", lower, upper, max(1, int(share / unit)))
    usd0, usd1 = token_usd_prices(pool, pool.reference_price_usd)
    sizes = market.median_swap_usd * np.exp(
        market.swap_size_sigma * rng.standard_normal(market.swaps)
    )
    gaps = rng.exponential(market.seconds_per_swap, market.swaps)
    times = market.start_time + np.floor(np.cumsum(gaps)).astype(np.int64)
    columns: list[list[int]] = [[] for _ in range(8)]
    block = -1
    for i in range(market.swaps):
        # Pull the price back toward the centre: the further it strayed, the likelier the
        # swap that brings it back.
        drift = (v3.tick - centre) / (1500.0 * spacing)
        zero_for_one = bool(rng.random() < 1.0 / (1.0 + math.exp(-drift)))
        usd = float(sizes[i]) if i else 1.0
        if rng.random() < 0.8:  # exact input: the amount of the token going in
            amount = _raw_amount(pool, usd, 0 if zero_for_one else 1, usd0, usd1)
        else:  # exact output: the amount of the token coming out
            amount = -_raw_amount(pool, usd, 1 if zero_for_one else 0, usd0, usd1)
        event = v3.swap(zero_for_one, amount)
        new_block = int(times[i]) // 12
        log_index = 0 if new_block != block else columns[2][-1] + 1 + int(rng.integers(0, 3))
        block = new_block
        for column, value in zip(
            columns,
            (
                int(times[i]),
                block,
                log_index,
                event.amount0,
                event.amount1,
                event.sqrt_price_x96,
                event.liquidity,
                event.tick,
            ),
            strict=True,
        ):
            column.append(value)
    return make_history(*columns)


def _raw_amount(pool: PoolSpec, usd: float, token: int, usd0: float, usd1: float) -> int:
    decimals, price = (pool.decimals0, usd0) if token == 0 else (pool.decimals1, usd1)
    return max(1, int(usd / price * 10**decimals))


def _unit_value_usd(pool: PoolSpec, tick: int, lower: int, upper: int) -> float:
    from clmmd.env.pricing import position_value_usd
    from clmmd.env.uniswap_math import amounts_for_liquidity_f, tick_to_price

    amount0, amount1 = amounts_for_liquidity_f(
        tick_to_price(tick), tick_to_price(lower), tick_to_price(upper), 1.0
    )
    return position_value_usd(pool, amount0, amount1, pool.reference_price_usd)


def _liquidity(pool: PoolSpec, usd: float) -> int:
    low, high = usable_tick_bounds(pool.tick_spacing)
    centre = price_to_tick(raw_price_from_usd(pool, pool.reference_price_usd))
    return max(1, int(usd / _unit_value_usd(pool, centre, low, high)))
