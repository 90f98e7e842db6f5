"""USD prices ↔ pool ticks and position values, for either token orientation.

Uniswap quotes ``raw price = token1_raw / token0_raw = 1.0001**tick``. The agent and the
operator think in the USD price of the pool's volatile token, and the pool's ``stable_token``
(worth exactly one dollar in mock mode) decides how the two relate:

* ``stable_token == 1`` (e.g. WETH-USDT, WETH is token0): ``usd = raw * 10**(d0 - d1)``;
* ``stable_token == 0`` (e.g. WETH-USDC, USDC is token0): ``usd = 10**(d1 - d0) / raw``, so a
  higher USD price is a *lower* tick.

Amounts here are raw token units (wei, 1e-6 USDC, ...) as floats or ints; liquidity is the float
``L`` of :mod:`env.uniswap_math`'s float helpers, in the pool's raw units.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from clmmd.env.base import PoolSpec
from clmmd.env.uniswap_math import (
    LOG_TICK_BASE,
    amounts_for_liquidity_f,
    price_to_tick,
    snap_range,
    tick_to_price,
)


def _decimal_scale(pool: PoolSpec) -> float:
    return float(10.0 ** (pool.decimals1 - pool.decimals0))


def _check_usd(usd: float) -> None:
    if not (math.isfinite(usd) and usd > 0):
        raise ValueError(f"usd price must be finite and > 0, got {usd!r}")


def raw_price_from_usd(pool: PoolSpec, usd: float) -> float:
    """Uniswap raw price (token1_raw per token0_raw) at which the volatile token costs ``usd``."""
    _check_usd(usd)
    scale = _decimal_scale(pool)
    return usd * scale if pool.stable_token == 1 else scale / usd


def raw_prices_from_usd(pool: PoolSpec, usd: NDArray[np.float64]) -> NDArray[np.float64]:
    """Vectorised :func:`raw_price_from_usd` for a whole price path (no validation)."""
    scale = _decimal_scale(pool)
    result: NDArray[np.float64] = usd * scale if pool.stable_token == 1 else scale / usd
    return result


def usd_from_raw_price(pool: PoolSpec, raw: float) -> float:
    """USD price of the volatile token when the pool's raw price is ``raw``."""
    if not (math.isfinite(raw) and raw > 0):
        raise ValueError(f"raw price must be finite and > 0, got {raw!r}")
    scale = _decimal_scale(pool)
    return raw / scale if pool.stable_token == 1 else scale / raw


def tick_to_usd_price(pool: PoolSpec, tick: int) -> float:
    """USD price of the volatile token at ``tick``."""
    return usd_from_raw_price(pool, tick_to_price(tick))


def usd_price_to_tick(pool: PoolSpec, usd: float) -> int:
    """The tick whose price is nearest to ``usd`` (so ``tick → usd → tick`` round-trips)."""
    raw = raw_price_from_usd(pool, usd)
    return round(math.log(raw) / LOG_TICK_BASE)


def usd_price_to_floor_tick(pool: PoolSpec, usd: float) -> int:
    """The tick containing ``usd``: greatest tick whose raw price is <= the raw price of ``usd``."""
    return price_to_tick(raw_price_from_usd(pool, usd))


def usd_range_to_ticks(pool: PoolSpec, usd_a: float, usd_b: float) -> tuple[int, int]:
    """``(tick_lower, tick_upper)`` covering the USD band between ``usd_a`` and ``usd_b``.

    Either order is accepted; the result is widened outward to the pool's tick spacing, so the
    position covers at least the requested band whatever the token orientation.
    """
    ticks = sorted((usd_price_to_floor_tick(pool, usd_a), usd_price_to_floor_tick(pool, usd_b)))
    # The upper bound must be the tick *above* the higher raw price to include it.
    return snap_range(ticks[0], ticks[1] + 1, pool.tick_spacing)


def ticks_to_usd_range(pool: PoolSpec, tick_lower: int, tick_upper: int) -> tuple[float, float]:
    """``(usd_low, usd_high)`` of the volatile token across a tick range, low first."""
    a, b = tick_to_usd_price(pool, tick_lower), tick_to_usd_price(pool, tick_upper)
    return (a, b) if a <= b else (b, a)


def token_usd_prices(pool: PoolSpec, usd_price: float) -> tuple[float, float]:
    """USD value of one whole token0 and one whole token1 at volatile price ``usd_price``."""
    return (1.0, usd_price) if pool.stable_token == 0 else (usd_price, 1.0)


def position_value_usd(
    pool: PoolSpec, amount0_raw: float, amount1_raw: float, usd_price: float
) -> float:
    """USD value of raw token amounts when the volatile token is worth ``usd_price``."""
    usd0, usd1 = token_usd_prices(pool, usd_price)
    return float(
        amount0_raw * usd0 / 10.0**pool.decimals0 + amount1_raw * usd1 / 10.0**pool.decimals1
    )


def liquidity_for_value_usd(
    pool: PoolSpec, value_usd: float, usd_price: float, price_a: float, price_b: float
) -> tuple[float, float, float]:
    """Split ``value_usd`` into the token amounts that give maximal liquidity over a raw range.

    ``price_a``/``price_b`` are the range's raw prices (e.g. ``tick_to_price(tick_lower)``), in
    either order. At a given price every unit of liquidity needs a fixed token mix, so the
    maximal ``L`` for a budget is ``value / (USD value of one unit of L)``. Returns ``(L,
    amount0_raw, amount1_raw)``; outside the range the position is single-sided, as in Uniswap.
    """
    if not (math.isfinite(value_usd) and value_usd >= 0):
        raise ValueError(f"value_usd must be finite and >= 0, got {value_usd!r}")
    raw = raw_price_from_usd(pool, usd_price)
    unit0, unit1 = amounts_for_liquidity_f(raw, price_a, price_b, 1.0)
    liquidity = value_usd / position_value_usd(pool, unit0, unit1, usd_price)
    return liquidity, unit0 * liquidity, unit1 * liquidity
