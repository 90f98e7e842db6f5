"""env.replay: windows, and a position's amounts, values and PnL decomposition on a window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmmd.env.base import KNOWN_POOLS
from clmmd.env.history import HistoryError, make_history
from clmmd.env.pricing import position_value_usd, usd_range_to_ticks
from clmmd.env.replay import ReplayMarket
from clmmd.env.replay_fees import LpPosition
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history
from clmmd.env.uniswap_math import usable_tick_bounds
from tests.env.pool_play import full_range_pool, play

POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


@pytest.fixture(scope="module")
def market() -> ReplayMarket:
    return ReplayMarket(synthetic_history(POOL, SyntheticMarket(swaps=8000, seed=11)), POOL)


def test_window_opens_after_the_last_swap_at_or_before_from(market: ReplayMarket) -> None:
    times = market.history.block_time
    start_time = int(times[100])
    window = market.window(start_time, int(times[500]))
    assert window.start == market.history.index_at(start_time) >= 100
    assert window.stop == market.history.index_at(int(times[500]))
    assert window.swaps == window.stop - window.start > 0


@pytest.mark.parametrize(
    ("shift_from", "shift_to", "message"),
    [
        (-10_000, 100, "no swap at or before --from .* the history starts at"),
        (0, 0, "empty window: --to .* is not after --from"),
        (10**7, 10**7 + 60, "empty window: no swap between --from"),
    ],
)
def test_window_errors_name_the_problem(
    market: ReplayMarket, shift_from: int, shift_to: int, message: str
) -> None:
    first = market.first_time
    with pytest.raises(HistoryError, match=message):
        market.window(first + shift_from, first + shift_to)


def test_random_windows_are_seeded_and_inside_the_history(market: ReplayMarket) -> None:
    a, b = market.random_window(7, 6.0), market.random_window(7, 6.0)
    assert a == b
    assert market.random_window(8, 6.0) != a
    for seed in range(20):
        w = market.random_window(seed, 6.0)
        assert market.first_time <= w.start_time and w.end_time <= market.last_time
        assert w.end_time - w.start_time == 6 * 3600
    with pytest.raises(HistoryError, match="less than one 10000 h episode"):
        market.random_window(1, 10_000.0)


def test_outcome_decomposes_pnl_and_values_everything_at_the_pools_prices(
    market: ReplayMarket,
) -> None:
    window = market.window(market.first_time, market.last_time)
    lower, upper = usd_range_to_ticks(POOL, 2800.0, 3200.0)
    liquidity = market.liquidity_for_size(window, lower, upper, 10_000.0)
    result = market.evaluate(LpPosition(lower, upper, liquidity), window, gas_cost_usd=12.5)
    assert result.value_start_usd == pytest.approx(10_000.0, rel=1e-6)
    assert result.pnl_usd == pytest.approx(
        result.value_end_usd + result.fees_usd - result.value_start_usd - 12.5
    )
    assert result.pnl_usd == pytest.approx(
        result.hodl_return_usd - result.il_usd + result.fees_usd - result.gas_cost_usd
    )
    end = result.end_price_usd
    assert result.value_end_usd == position_value_usd(POOL, *result.withdrawal, end)
    assert result.fees_usd == position_value_usd(POOL, result.fees.fee0, result.fees.fee1, end)
    assert result.il_usd >= -1e-9  # a range position never beats holding before fees
    assert 0 < result.time_in_range_pct <= 100
    summary = result.to_json()
    assert summary["fees_token0"] == str(result.fees.fee0)
    assert summary["liquidity"] == str(liquidity)


def test_time_in_range_is_time_weighted(market: ReplayMarket) -> None:
    window = market.window(market.first_time, market.last_time)
    low, high = usable_tick_bounds(POOL.tick_spacing)
    assert market.time_in_range_pct(LpPosition(low, high, 1), window) == 100.0
    assert market.time_in_range_pct(LpPosition(low, low + 10, 1), window) == 0.0
    # A range holding exactly the ticks after some events is in range exactly that long.
    tick = int(market.history.tick[window.start])
    spacing = POOL.tick_spacing
    lower = tick // spacing * spacing
    narrow = LpPosition(lower, lower + spacing, 1)
    ticks = market.history.tick[window.start : window.stop + 1]
    times = [
        window.start_time,
        *market.history.block_time[window.start + 1 : window.stop + 1],
        window.end_time,
    ]
    inside = sum(
        times[k + 1] - times[k] for k, t in enumerate(ticks) if lower <= t < lower + spacing
    )
    expected = 100.0 * inside / (window.end_time - window.start_time)
    assert market.time_in_range_pct(narrow, window) == pytest.approx(expected)


def test_ticks_off_the_spacing_are_refused(market: ReplayMarket) -> None:
    with pytest.raises(ValueError, match="tick_lower=195005 is not a multiple of the tick spacing"):
        market.check_ticks(195_005, 196_000)
    with pytest.raises(ValueError, match="must have lower < upper"):
        market.check_ticks(196_000, 195_000)


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 900), min_size=1, max_size=40),
    horizon_s=st.integers(1, 6000),
    seed=st.integers(0, 2**32),
)
def test_random_windows_hold_exactly_the_swaps_after_their_start_up_to_their_end(
    gaps: list[int], horizon_s: int, seed: int
) -> None:
    """Seeded windows at any place of a history (its very start and end included, several swaps
    in one second): the position opens after every swap at or before the start time and lives
    through every swap up to and including the end time, no more."""
    played = play(full_range_pool(), [(k % 2 == 0, True, 15.0, None) for k in range(len(gaps))])
    h = played.history
    times = 1_000 + np.cumsum([0, *gaps[: len(h) - 1]])
    history = make_history(
        times, h.block_number, h.log_index, h.amount0, h.amount1, h.sqrt_price_x96,
        h.liquidity, h.tick,
    )  # fmt: skip
    market = ReplayMarket(history, POOL)
    hours = horizon_s / 3600
    if int(times[-1] - times[0]) < horizon_s:
        with pytest.raises(HistoryError, match="less than one"):
            market.random_window(seed, hours)
        return
    window = market.random_window(seed, hours)
    assert times[0] <= window.start_time and window.end_time <= times[-1]
    assert window.end_time - window.start_time == horizon_s
    inside = [i for i, t in enumerate(times) if window.start_time < t <= window.end_time]
    assert list(range(window.start + 1, window.stop + 1)) == inside
    assert times[window.start] <= window.start_time
