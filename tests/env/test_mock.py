"""Tests for env.mock: fees, impermanent loss, gas, risk scalar, defaults, validation."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmmd.env.base import (
    KNOWN_POOLS,
    ClmmEnv,
    ExecutionOutcome,
    ExecutionRequest,
    MarketInputs,
    PoolSpec,
)
from clmmd.env.mock import (
    DEFAULT_ACTIVE_LIQUIDITY_USD,
    DEFAULT_GAS_PRICE_GWEI,
    DEFAULT_VOLATILITY_DAILY,
    DEFAULT_VOLUME_USD_PER_DAY,
    GAS_UNITS_PER_EPISODE,
    MockClmmEnv,
    gas_cost_usd,
    resolve_market,
    simulate,
)
from clmmd.env.pricing import raw_price_from_usd, usd_range_to_ticks
from clmmd.env.uniswap_math import tick_to_price, usable_tick_bounds

USDC_WETH = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]  # token1 = WETH
WETH_USDT = KNOWN_POOLS["0x11b815efb8f581194ae79006d24e0d814b7697f6"]  # token1 = USDT
POOLS = [USDC_WETH, WETH_USDT]

CALM = MarketInputs(
    price_usd=3000.0,
    volatility_daily=0.0,
    volume_usd_per_day=1e8,
    active_liquidity_usd=5e7,
    gas_price_gwei=20.0,
    eth_price_usd=3000.0,
)


def make_request(
    pool: PoolSpec = USDC_WETH,
    band: tuple[float, float] = (2700.0, 3300.0),
    **overrides: Any,
) -> ExecutionRequest:
    tick_lower, tick_upper = usd_range_to_ticks(pool, *band)
    request = ExecutionRequest(
        run_id="run-1",
        episode_id="ep-1",
        pool=pool,
        tick_lower=tick_lower,
        tick_upper=tick_upper,
        size_usd=10_000.0,
        risk_scalar=1.0,
        horizon_hours=24.0,
        seed=42,
        market=CALM,
    )
    return replace(request, **overrides)


def two_point(request: ExecutionRequest, end_usd: float) -> ExecutionOutcome:
    """Simulate a single step from the request's start price straight to ``end_usd``."""
    market = resolve_market(request.pool, request.market)
    prices = np.array([market.price_usd, end_usd])
    return simulate(request, market, prices, np.array([0.0]))


def token1_usd_factor(pool: PoolSpec, start_usd: float, end_usd: float) -> float:
    """Converts an amount valued in token1-at-start-USD into USD at the end price."""
    return 1.0 if pool.stable_token == 1 else end_usd / start_usd


# --- impermanent loss -----------------------------------------------------------------------


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: p.pair + str(p.stable_token))
@pytest.mark.parametrize("end_usd", [2800.0, 2950.0, 3100.0, 3250.0])
def test_in_range_il_matches_concentrated_closed_form(pool: PoolSpec, end_usd: float) -> None:
    request = make_request(pool)
    outcome = two_point(request, end_usd)
    # Token1-denominated closed form: IL / V0 = (√r − 1)² / (2 − √a − 1/√b), with prices
    # relative to the start price p0: r = p1/p0, a = pa/p0, b = pb/p0.
    p0, p1 = raw_price_from_usd(pool, 3000.0), raw_price_from_usd(pool, end_usd)
    r = p1 / p0
    a = tick_to_price(request.tick_lower) / p0
    b = tick_to_price(request.tick_upper) / p0
    fraction = (math.sqrt(r) - 1) ** 2 / (2 - math.sqrt(a) - 1 / math.sqrt(b))
    expected = request.size_usd * fraction * token1_usd_factor(pool, 3000.0, end_usd)
    assert outcome.il_usd == pytest.approx(expected, rel=1e-7)
    assert outcome.il_usd > 0


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: p.pair + str(p.stable_token))
@pytest.mark.parametrize("ratio", [0.5, 0.8, 1.25, 2.0, 4.0])
def test_full_range_il_matches_classic_formula(pool: PoolSpec, ratio: float) -> None:
    low, high = usable_tick_bounds(pool.tick_spacing)
    request = replace(make_request(pool), tick_lower=low, tick_upper=high)
    outcome = two_point(request, 3000.0 * ratio)
    hold_end = outcome.simulation["hold_value_end_usd"]
    classic = 1 - 2 * math.sqrt(ratio) / (1 + ratio)
    assert outcome.il_usd / hold_end == pytest.approx(classic, rel=1e-6)


def test_narrower_range_loses_more_to_the_same_move() -> None:
    wide = two_point(make_request(band=(2000.0, 4500.0)), 3200.0)
    narrow = two_point(make_request(band=(2900.0, 3300.0)), 3200.0)
    assert narrow.il_usd > 2 * wide.il_usd > 0


def test_no_price_move_no_il() -> None:
    outcome = MockClmmEnv().run(make_request())
    assert outcome.il_usd == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(POOLS),
    st.integers(0, 2**32),
    st.floats(0.0, 0.3),
    st.floats(500.0, 2990.0),
    st.floats(1.01, 3.0),
)
def test_il_is_never_negative_and_pnl_adds_up(
    pool: PoolSpec, seed: int, vol: float, low: float, width: float
) -> None:
    market = replace(CALM, volatility_daily=vol)
    request = make_request(pool, band=(low, low * width), seed=seed, market=market)
    outcome = MockClmmEnv().run(request)
    sim = outcome.simulation
    assert outcome.il_usd >= -1e-9 * request.size_usd
    expected_pnl = sim["lp_value_end_usd"] + outcome.fees_usd - sim["initial_value_usd"]
    assert outcome.pnl_usd == pytest.approx(expected_pnl - outcome.gas_cost_usd, abs=1e-6)
    assert sim["initial_value_usd"] == pytest.approx(request.size_usd, rel=1e-9)
    assert 0.0 <= outcome.time_in_range_pct <= 100.0
    # The decomposition: PnL = HODL return − IL + fees − gas.
    assert outcome.hodl_return_usd == pytest.approx(
        sim["hold_value_end_usd"] - sim["initial_value_usd"], abs=1e-9
    )
    parts = outcome.hodl_return_usd - outcome.il_usd + outcome.fees_usd - outcome.gas_cost_usd
    assert outcome.pnl_usd == pytest.approx(parts, abs=1e-6)


# --- fees and time in range -----------------------------------------------------------------


def test_always_out_of_range_earns_no_fees() -> None:
    above = make_request(band=(4000.0, 5000.0))
    outcome = MockClmmEnv().run(above)
    assert outcome.fees_usd == 0.0
    assert outcome.time_in_range_pct == 0.0
    assert outcome.pnl_usd == pytest.approx(-outcome.gas_cost_usd, abs=1e-6)


def test_far_range_with_volatility_stays_out_and_earns_nothing() -> None:
    market = replace(CALM, volatility_daily=0.04)
    outcome = MockClmmEnv().run(make_request(band=(6000.0, 9000.0), market=market))
    assert outcome.fees_usd == 0.0
    assert outcome.time_in_range_pct == 0.0


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: p.pair + str(p.stable_token))
def test_zero_volatility_in_range_is_always_in_range(pool: PoolSpec) -> None:
    outcome = MockClmmEnv().run(make_request(pool))
    assert outcome.time_in_range_pct == 100.0
    assert outcome.fees_usd > 0


def test_fees_are_fee_tier_times_volume_times_liquidity_share() -> None:
    env = MockClmmEnv(volume_noise=0.0)
    outcome = env.run(make_request(horizon_hours=12.0))
    sim = outcome.simulation
    share = sim["liquidity"] / (sim["active_liquidity"] + sim["liquidity"])
    expected = USDC_WETH.fee_fraction * 1e8 * 0.5 * share
    assert outcome.fees_usd == pytest.approx(expected, rel=1e-9)


def test_fees_scale_linearly_with_volume() -> None:
    env = MockClmmEnv()
    base = env.run(make_request())
    double = env.run(make_request(market=replace(CALM, volume_usd_per_day=2e8)))
    assert double.fees_usd == pytest.approx(2 * base.fees_usd, rel=1e-12)


def test_fees_follow_the_share_of_active_liquidity() -> None:
    env = MockClmmEnv()
    thin = env.run(make_request(market=replace(CALM, active_liquidity_usd=1e6)))
    deep = env.run(make_request(market=replace(CALM, active_liquidity_usd=1e8)))
    assert thin.fees_usd > 10 * deep.fees_usd
    # Same position liquidity; active liquidity scales with its USD value.
    assert thin.simulation["liquidity"] == deep.simulation["liquidity"]
    ratio = deep.simulation["active_liquidity"] / thin.simulation["active_liquidity"]
    assert ratio == pytest.approx(100.0, rel=1e-9)


def test_equal_position_over_the_same_band_gets_about_half_the_fees() -> None:
    # Active liquidity is modelled as a position over ±10 % around the start price; a position of
    # the same value over (nearly) the same band has (nearly) the same L, hence a share near 1/2.
    market = replace(CALM, active_liquidity_usd=10_000.0)
    outcome = MockClmmEnv().run(make_request(band=(3000.0 / 1.1, 3000.0 / 0.9), market=market))
    assert outcome.simulation["fee_share"] == pytest.approx(0.5, abs=0.02)


def test_fees_accrue_only_for_steps_in_range() -> None:
    request = make_request(band=(2900.0, 3100.0), market=replace(CALM, volume_usd_per_day=1e8))
    market = resolve_market(request.pool, request.market)
    prices = np.array([3000.0, 3000.0, 3500.0, 3500.0, 3000.0])  # steps 2 and 3 start outside
    volumes = np.array([1e6, 2e6, 4e6, 8e6])
    outcome = simulate(request, market, prices, volumes)
    share = outcome.simulation["fee_share"]
    assert outcome.time_in_range_pct == pytest.approx(50.0)
    assert outcome.fees_usd == pytest.approx(USDC_WETH.fee_fraction * share * 3e6, rel=1e-12)


# --- gas ------------------------------------------------------------------------------------


def test_gas_cost_arithmetic() -> None:
    assert GAS_UNITS_PER_EPISODE == 350_000 + 180_000 + 120_000
    assert gas_cost_usd(20.0, 3000.0) == pytest.approx(650_000 * 20e-9 * 3000.0)
    assert gas_cost_usd(10.0, 2000.0, gas_units=100_000) == pytest.approx(2.0)


def test_outcome_gas_uses_market_gas_price_and_eth_price() -> None:
    market = replace(CALM, gas_price_gwei=50.0, eth_price_usd=2500.0)
    outcome = MockClmmEnv().run(make_request(market=market))
    assert outcome.gas_cost_usd == pytest.approx(650_000 * 50e-9 * 2500.0)


# --- risk scalar ----------------------------------------------------------------------------


def test_risk_scalar_scales_size_fees_and_il() -> None:
    env = MockClmmEnv()
    market = replace(CALM, volatility_daily=0.08)
    full = env.run(make_request(market=market, risk_scalar=1.0))
    quarter = env.run(make_request(market=market, risk_scalar=0.25))
    assert quarter.risk_scalar_applied == 0.25
    assert quarter.size_usd_applied == pytest.approx(2_500.0)
    assert full.size_usd_applied == pytest.approx(10_000.0)
    assert full.il_usd > 0 and full.fees_usd > 0
    assert quarter.il_usd == pytest.approx(0.25 * full.il_usd, rel=1e-9)
    # Fees are nearly proportional: the position is a tiny share of the pool's liquidity.
    assert quarter.fees_usd == pytest.approx(0.25 * full.fees_usd, rel=1e-3)
    assert quarter.gas_cost_usd == full.gas_cost_usd


# --- determinism, defaults, interface -------------------------------------------------------


def test_same_request_same_outcome() -> None:
    request = make_request(market=replace(CALM, volatility_daily=0.05))
    assert MockClmmEnv().run(request) == MockClmmEnv().run(request)


def test_different_seed_different_outcome() -> None:
    market = replace(CALM, volatility_daily=0.05)
    a = MockClmmEnv().run(make_request(market=market, seed=1))
    b = MockClmmEnv().run(make_request(market=market, seed=2))
    assert a.pnl_usd != b.pnl_usd


async def test_execute_is_the_async_face_of_run() -> None:
    env: ClmmEnv = MockClmmEnv()
    assert env.name == "mock"
    request = make_request()
    assert await env.execute(request) == MockClmmEnv().run(request)


def test_simulation_record() -> None:
    outcome = MockClmmEnv().run(make_request(WETH_USDT))
    sim = outcome.simulation
    assert sim["source"] == "mock"
    assert sim["seed"] == 42
    assert sim["steps"] == 288
    assert sim["start_price_usd"] == sim["end_price_usd"] == 3000.0
    assert (sim["tick_lower"], sim["tick_upper"]) == usd_range_to_ticks(WETH_USDT, 2700.0, 3300.0)
    assert sim["price_lower_usd"] <= 2700.0 and sim["price_upper_usd"] >= 3300.0
    assert sim["liquidity"] > 0
    assert (sim["token0"], sim["token1"]) == ("WETH", "USDT")
    value = sim["amount0"] * 3000.0 + sim["amount1"]  # human units: WETH and USDT
    assert value == pytest.approx(10_000.0, rel=1e-9)
    assert sim["defaults_used"] == []


def test_missing_market_inputs_use_documented_defaults() -> None:
    outcome = MockClmmEnv().run(make_request(market=MarketInputs()))
    sim = outcome.simulation
    assert set(sim["defaults_used"]) == {
        "price_usd",
        "volatility_daily",
        "volume_usd_per_day",
        "active_liquidity_usd",
        "gas_price_gwei",
        "eth_price_usd",
    }
    assert sim["inputs"] == {
        "price_usd": USDC_WETH.reference_price_usd,
        "volatility_daily": DEFAULT_VOLATILITY_DAILY,
        "volume_usd_per_day": DEFAULT_VOLUME_USD_PER_DAY,
        "active_liquidity_usd": DEFAULT_ACTIVE_LIQUIDITY_USD,
        "gas_price_gwei": DEFAULT_GAS_PRICE_GWEI,
        "eth_price_usd": USDC_WETH.reference_price_usd,
    }
    assert (DEFAULT_VOLATILITY_DAILY, DEFAULT_VOLUME_USD_PER_DAY) == (0.04, 1e8)
    assert (DEFAULT_ACTIVE_LIQUIDITY_USD, DEFAULT_GAS_PRICE_GWEI) == (5e7, 20.0)


def test_unusable_market_inputs_fall_back_and_are_reported() -> None:
    market = replace(CALM, volume_usd_per_day=math.nan, price_usd=-1.0, gas_price_gwei=math.inf)
    sim = MockClmmEnv().run(make_request(market=market)).simulation
    assert set(sim["defaults_used"]) == {"volume_usd_per_day", "price_usd", "gas_price_gwei"}
    assert sim["inputs"]["volume_usd_per_day"] == DEFAULT_VOLUME_USD_PER_DAY


def test_zero_volume_is_a_real_value_not_a_default() -> None:
    outcome = MockClmmEnv().run(make_request(market=replace(CALM, volume_usd_per_day=0.0)))
    assert outcome.fees_usd == 0.0
    assert outcome.simulation["defaults_used"] == []


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"tick_lower": 196_000, "tick_upper": 196_000}, "tick_lower=196000"),
        ({"tick_lower": 196_100, "tick_upper": 196_000}, "tick_upper=196000"),
        ({"tick_lower": 196_005, "tick_upper": 197_000}, "tick_lower=196005"),
        ({"tick_lower": 196_000, "tick_upper": 197_001}, "tick_upper=197001"),
        ({"tick_lower": -887_280, "tick_upper": 0}, "-887280"),
        ({"size_usd": math.nan}, "size_usd=nan"),
        ({"size_usd": math.inf}, "size_usd=inf"),
        ({"size_usd": 0.0}, "size_usd=0.0"),
        ({"size_usd": -10.0}, "size_usd=-10.0"),
        ({"risk_scalar": 0.0}, "risk_scalar=0.0"),
        ({"risk_scalar": 1.5}, "risk_scalar=1.5"),
        ({"risk_scalar": math.nan}, "risk_scalar=nan"),
        ({"horizon_hours": 0.0}, "horizon_hours=0.0"),
        ({"seed": -3}, "seed=-3"),
    ],
)
def test_invalid_requests_name_the_field_and_value(
    overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment.replace("+", r"\+")):
        MockClmmEnv().run(make_request(**overrides))


async def test_invalid_request_raises_through_execute() -> None:
    with pytest.raises(ValueError, match="risk_scalar"):
        await MockClmmEnv().execute(make_request(risk_scalar=2.0))


def test_simulate_rejects_mismatched_arrays() -> None:
    request = make_request()
    market = resolve_market(request.pool, request.market)
    with pytest.raises(ValueError, match="len"):
        simulate(request, market, np.array([3000.0, 3000.0]), np.array([1.0, 2.0]))
