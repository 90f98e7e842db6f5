"""Tests for env.pricing in both token orientations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.env.base import KNOWN_POOLS, PoolSpec
from clmmd.env.pricing import (
    liquidity_for_value_usd,
    position_value_usd,
    raw_price_from_usd,
    raw_prices_from_usd,
    tick_to_usd_price,
    ticks_to_usd_range,
    token_usd_prices,
    usd_from_raw_price,
    usd_price_to_floor_tick,
    usd_price_to_tick,
    usd_range_to_ticks,
)
from clmmd.env.uniswap_math import amounts_for_liquidity_f, tick_to_price

# USDC is token0 (6 decimals), WETH token1 (18): a higher ETH price is a lower tick.
USDC_WETH = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]
# WETH is token0 (18 decimals), USDT token1 (6): a higher ETH price is a higher tick.
WETH_USDT = KNOWN_POOLS["0x11b815efb8f581194ae79006d24e0d814b7697f6"]
POOLS = [USDC_WETH, WETH_USDT]
pools = st.sampled_from(POOLS)
usd_prices = st.floats(1.0, 1_000_000.0)


def test_raw_price_orientation_for_usdc_token0() -> None:
    # 1 WETH (1e18 wei) costs 3000 USDC (3000e6 units): token1/token0 = 1e18 / 3000e6.
    assert raw_price_from_usd(USDC_WETH, 3000.0) == pytest.approx(1e18 / 3000e6, rel=1e-12)


def test_raw_price_orientation_for_weth_token0() -> None:
    # 1 WETH (1e18 wei) buys 3000 USDT (3000e6 units): token1/token0 = 3000e6 / 1e18.
    assert raw_price_from_usd(WETH_USDT, 3000.0) == pytest.approx(3000e6 / 1e18, rel=1e-12)


def test_higher_usd_price_moves_the_tick_the_right_way() -> None:
    assert usd_price_to_tick(USDC_WETH, 3300.0) < usd_price_to_tick(USDC_WETH, 3000.0)
    assert usd_price_to_tick(WETH_USDT, 3300.0) > usd_price_to_tick(WETH_USDT, 3000.0)


def test_mainnet_sized_ticks() -> None:
    # Sanity against known mainnet magnitudes: USDC/WETH around +196k, WETH/USDT around -196k.
    assert 190_000 < usd_price_to_tick(USDC_WETH, 3000.0) < 200_000
    assert -200_000 < usd_price_to_tick(WETH_USDT, 3000.0) < -190_000


@given(pools, st.integers(-600_000, 600_000))
def test_tick_to_usd_to_tick_round_trips(pool: PoolSpec, tick: int) -> None:
    assert usd_price_to_tick(pool, tick_to_usd_price(pool, tick)) == tick


@given(pools, usd_prices)
def test_usd_to_raw_to_usd_round_trips(pool: PoolSpec, usd: float) -> None:
    assert usd_from_raw_price(pool, raw_price_from_usd(pool, usd)) == pytest.approx(usd, rel=1e-12)


@given(pools, usd_prices)
def test_nearest_tick_is_within_half_a_tick(pool: PoolSpec, usd: float) -> None:
    tick_usd = tick_to_usd_price(pool, usd_price_to_tick(pool, usd))
    assert abs(math.log(tick_usd / usd)) <= 0.5 * math.log(1.0001) * (1 + 1e-6)


@given(pools, usd_prices)
def test_floor_tick_contains_the_price(pool: PoolSpec, usd: float) -> None:
    tick = usd_price_to_floor_tick(pool, usd)
    raw = raw_price_from_usd(pool, usd)
    assert tick_to_price(tick) <= raw < tick_to_price(tick + 1)


def test_vectorised_raw_prices_match_scalar() -> None:
    usd = np.array([1500.0, 3000.0, 4500.0])
    for pool in POOLS:
        expected = [raw_price_from_usd(pool, float(u)) for u in usd]
        assert raw_prices_from_usd(pool, usd) == pytest.approx(expected, rel=1e-15)


@given(pools, st.floats(100.0, 10_000.0), st.floats(1.001, 3.0))
def test_usd_range_to_ticks_covers_the_band(pool: PoolSpec, low: float, factor: float) -> None:
    high = low * factor
    tick_lower, tick_upper = usd_range_to_ticks(pool, high, low)  # either order
    spacing = pool.tick_spacing
    assert tick_lower % spacing == 0 and tick_upper % spacing == 0
    assert tick_lower < tick_upper
    band_low, band_high = ticks_to_usd_range(pool, tick_lower, tick_upper)
    assert band_low <= low * (1 + 1e-12)
    assert band_high >= high * (1 - 1e-12)
    # Widened by at most about two tick spacings in total.
    assert band_high / band_low <= factor * 1.0001 ** (2 * spacing + 2)


@pytest.mark.parametrize("usd", [0.0, -5.0, math.nan, math.inf])
def test_bad_usd_prices_raise(usd: float) -> None:
    with pytest.raises(ValueError, match="usd"):
        raw_price_from_usd(USDC_WETH, usd)


def test_token_usd_prices_follow_the_stable_token() -> None:
    assert token_usd_prices(USDC_WETH, 3000.0) == (1.0, 3000.0)
    assert token_usd_prices(WETH_USDT, 3000.0) == (3000.0, 1.0)


def test_position_value_uses_decimals_and_orientation() -> None:
    # 1000 USDC + 0.5 WETH at $3000 = $2500, expressed in raw units of each pool.
    assert position_value_usd(USDC_WETH, 1000e6, 0.5e18, 3000.0) == pytest.approx(2500.0)
    assert position_value_usd(WETH_USDT, 0.5e18, 1000e6, 3000.0) == pytest.approx(2500.0)


@given(pools, st.floats(500.0, 5000.0), st.integers(50, 5000), st.floats(1.0, 1e7))
def test_split_value_is_worth_the_budget_and_matches_liquidity(
    pool: PoolSpec, usd: float, half_width: int, value: float
) -> None:
    center = usd_price_to_tick(pool, usd)
    pa, pb = tick_to_price(center - half_width), tick_to_price(center + half_width)
    liquidity, amount0, amount1 = liquidity_for_value_usd(pool, value, usd, pa, pb)
    assert position_value_usd(pool, amount0, amount1, usd) == pytest.approx(value, rel=1e-9)
    x, y = amounts_for_liquidity_f(raw_price_from_usd(pool, usd), pa, pb, liquidity)
    assert (x, y) == pytest.approx((amount0, amount1), rel=1e-9)


def test_split_value_is_single_sided_outside_the_range() -> None:
    for pool in POOLS:
        raw = raw_price_from_usd(pool, 3000.0)
        _, below0, below1 = liquidity_for_value_usd(pool, 1000.0, 3000.0, raw * 1.1, raw * 1.2)
        _, above0, above1 = liquidity_for_value_usd(pool, 1000.0, 3000.0, raw * 0.8, raw * 0.9)
        assert below1 == 0.0 and below0 > 0
        assert above0 == 0.0 and above1 > 0


def test_split_value_rejects_bad_value() -> None:
    with pytest.raises(ValueError, match="value_usd"):
        liquidity_for_value_usd(USDC_WETH, math.nan, 3000.0, 1.0, 2.0)
