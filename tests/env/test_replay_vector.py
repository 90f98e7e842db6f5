"""The numpy replay (``replay_vector``) against the exact one (``replay_exact``), edge cases first.

The vector path places swaps inside, outside or on the range's boundaries with float prices and
hands what it cannot place to the exact walk; these tests aim at exactly those places: ranges
whose bounds are swap ticks or the window's opening tick, swaps that start or end on a bound
(price limits on tick-spacing multiples), ranges above or below every swap, stretches with no
active liquidity, one-swap and empty windows, windows at both ends of the history, positions on
top of the history and positions it already contains. Both paths must agree on the fees (per
token, 1e-9 relative as ``bench/replay.py`` requires, plus the one unit that rounding each
swap's share down can take) and on the counts; a position's amounts and time in range must not
depend on the path. ``CLMMD_LONG_TESTS=1`` runs ten times more examples.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from clmmd.env.base import PoolSpec
from clmmd.env.history import HistoryError
from clmmd.env.replay import ReplayMarket, ReplayWindow
from clmmd.env.replay_fees import (
    FeeResult,
    LpPosition,
    PreparedHistory,
    replay_exact,
    replay_vector,
)
from clmmd.env.uniswap_math import usable_tick_bounds
from clmmd.env.v3_pool import V3Pool
from tests.env.pool_play import Order, Played, full_range_pool, play

LONG = os.environ.get("CLMMD_LONG_TESTS") == "1"
EXAMPLES = 3000 if LONG else 100
GRID = 40  # price limits and positions within ±GRID tick spacings of the opening tick 0
TIERS = ((100, 1), (500, 10), (3000, 60))


def spec_for(fee: int) -> PoolSpec:
    """A pool of two 18-decimal tokens priced 1 (the histories start at tick 0)."""
    return PoolSpec(
        address="0x" + "ab" * 20,
        pair="A-B",
        token0="USDC",
        token1="TKN",
        decimals0=18,
        decimals1=18,
        fee_pips=fee,
        stable_token=0,
        reference_price_usd=1.0,
    )


@st.composite
def orders(draw: st.DrawFn, spacing: int) -> list[Order]:
    """Swaps of 1 wei to 1e22, a third of them stopped by a price limit on a tick-spacing
    multiple (so they end exactly on what may be a range bound), some on any tick."""
    limit = st.one_of(
        st.none(),
        st.integers(-GRID, GRID).map(lambda k: k * spacing),
        st.integers(-GRID * spacing, GRID * spacing),
    )
    amount = st.one_of(st.floats(0.0, 22.0), st.sampled_from([0.0, 1.0, 3.0, 18.0, 21.0]))
    order = st.tuples(st.booleans(), st.booleans(), amount, limit)
    return draw(st.lists(order, min_size=1, max_size=24))


@st.composite
def pools(draw: st.DrawFn, fee: int, spacing: int) -> V3Pool:
    """Full-range liquidity (or none) and up to three providers' ranges near the price: the
    price can run into stretches where no liquidity is active."""
    pool = V3Pool(2**96, fee, spacing)
    low, high = usable_tick_bounds(spacing)
    if draw(st.booleans()):
        pool.mint("background", low, high, 10 ** draw(st.integers(12, 24)))
    for k in range(draw(st.integers(0, 3))):
        lower = draw(st.integers(-GRID, GRID - 1)) * spacing
        upper = lower + draw(st.integers(1, GRID)) * spacing
        pool.mint(f"other{k}", lower, upper, 10 ** draw(st.integers(14, 24)))
    return pool


def window_of(draw: st.DrawFn, n: int) -> tuple[int, int]:
    """Whole history, its first or last swap alone, empty, or any slice."""
    shape = draw(st.sampled_from(["all", "first", "last", "empty", "one", "any"]))
    if shape == "all":
        return 0, n - 1
    if shape == "first":
        return 0, min(1, n - 1)
    if shape == "last":
        return max(0, n - 2), n - 1
    start = draw(st.integers(0, n - 1))
    if shape == "empty":
        return start, start
    if shape == "one":
        return start, min(start + 1, n - 1)
    return start, draw(st.integers(start, n - 1))


def range_near(draw: st.DrawFn, played: Played, spacing: int, start: int) -> tuple[int, int]:
    """Bounds on a swap's tick, the window's opening tick, the grid the limits use, or beyond
    every swap."""
    ticks = [int(t) for t in played.history.tick]
    low_tick, high_tick = min(ticks), max(ticks)
    anchor = draw(
        st.sampled_from(["swap", "open", "grid", "above", "below", "full"]),
    )
    width = draw(st.integers(1, 12)) * spacing
    if anchor == "full":
        return usable_tick_bounds(spacing)
    if anchor == "grid":
        lower = draw(st.integers(-GRID, GRID)) * spacing
    elif anchor == "above":
        lower = (high_tick // spacing + draw(st.integers(1, 3))) * spacing
    elif anchor == "below":
        lower = (low_tick // spacing - draw(st.integers(0, 3))) * spacing - width
    else:
        tick = ticks[start] if anchor == "open" else draw(st.sampled_from(ticks))
        # The bound at the tick (or just off it): which bound and how far off are drawn.
        bound = tick // spacing * spacing + draw(st.integers(-1, 1)) * spacing
        lower = bound if draw(st.booleans()) else bound - width
    low, high = usable_tick_bounds(spacing)
    lower = max(low, min(high - spacing, lower))
    return lower, min(high, lower + width)


def agree(exact: FeeResult, vector: FeeResult) -> None:
    for token, e, v in (("fee0", exact.fee0, vector.fee0), ("fee1", exact.fee1, vector.fee1)):
        assert abs(v - e) <= 1 + 1e-9 * e, f"{token}: exact {e}, vector {v}"
    counts = ("swaps", "swaps_in_range", "swaps_modelled")
    assert [getattr(vector, c) for c in counts] == [getattr(exact, c) for c in counts]


def compare(
    played: Played, fee: int, spacing: int, position: LpPosition, start: int, stop: int
) -> None:
    history = played.history
    # Fresh preparations: what one path's walks leave in the crossing cache must not be
    # what makes the other agree.
    try:
        exact = replay_exact(PreparedHistory(history, fee, spacing), position, start, stop)
    except HistoryError as error:
        with pytest.raises(HistoryError) as raised:
            replay_vector(PreparedHistory(history, fee, spacing), position, start, stop)
        assert str(raised.value) == str(error)
        return
    vector = replay_vector(PreparedHistory(history, fee, spacing), position, start, stop)
    agree(exact, vector)
    # A market evaluates many positions on one preparation, each on its own.
    market = ReplayMarket(history, spec_for(fee))
    window = ReplayWindow(
        start, stop, int(history.block_time[start]), int(history.block_time[stop]) + 6
    )
    by_vector = market.evaluate(position, window, gas_cost_usd=1.0, method="vector")
    by_exact = market.evaluate(position, window, gas_cost_usd=1.0, method="exact")
    agree(by_exact.fees, by_vector.fees)
    assert by_vector.deposit == by_exact.deposit
    assert by_vector.withdrawal == by_exact.withdrawal
    assert by_vector.time_in_range_pct == by_exact.time_in_range_pct
    assert by_vector.value_end_usd == by_exact.value_end_usd


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@_SETTINGS
@given(data=st.data(), tier=st.sampled_from(TIERS))
def test_vector_agrees_with_exact_for_a_position_on_top(
    data: st.DataObject, tier: tuple[int, int]
) -> None:
    fee, spacing = tier
    pool = data.draw(pools(fee, spacing))
    played = play(pool, data.draw(orders(spacing)))
    n = len(played.history)
    assume(n >= 2)
    start, stop = window_of(data.draw, n)
    lower, upper = range_near(data.draw, played, spacing, start)
    liquidity = 10 ** data.draw(st.integers(0, 26))
    compare(played, fee, spacing, LpPosition(lower, upper, liquidity), start, stop)


@_SETTINGS
@given(data=st.data(), tier=st.sampled_from(TIERS))
def test_vector_agrees_with_exact_for_a_position_the_history_contains(
    data: st.DataObject, tier: tuple[int, int]
) -> None:
    fee, spacing = tier
    pool = data.draw(pools(fee, spacing))
    lower = data.draw(st.integers(-GRID, GRID - 1)) * spacing
    upper = lower + data.draw(st.integers(1, 12)) * spacing
    liquidity = 10 ** data.draw(st.integers(10, 24))
    played = play(pool, data.draw(orders(spacing)), (lower, upper, liquidity))
    n = len(played.history)
    assume(n >= 2)
    start, stop = window_of(data.draw, n)
    position = LpPosition(lower, upper, liquidity, in_history=True)
    compare(played, fee, spacing, position, start, stop)
    if (start, stop) == (0, n - 1):
        # The whole history: the deposit is what the pool took for the mint, and both paths
        # owe what the pool pays.
        market = ReplayMarket(played.history, spec_for(fee))
        window = ReplayWindow(0, n - 1, 1000, 1000 + 12 * n)
        result = market.evaluate(position, window, gas_cost_usd=0.0, method="vector")
        assert result.deposit == played.minted
        assert result.withdrawal == played.pool.burn("me", lower, upper, liquidity)
        owed = played.pool.collect("me", lower, upper)
        exact = market.fees(position, window, "exact")
        if exact.swaps_modelled == 0:
            assert (exact.fee0 + result.withdrawal[0], exact.fee1 + result.withdrawal[1]) == owed


@_SETTINGS
@given(data=st.data(), tier=st.sampled_from(TIERS))
def test_vector_refuses_what_exact_refuses_for_a_position_the_history_lacks(
    data: st.DataObject, tier: tuple[int, int]
) -> None:
    """A position said to be in the history, with a liquidity within a few units of what the
    events report: beyond 2**53 the floats cannot tell which is larger, the integers can."""
    fee, spacing = tier
    pool = data.draw(pools(fee, spacing))
    played = play(pool, data.draw(orders(spacing)))
    n = len(played.history)
    assume(n >= 2)
    start, stop = window_of(data.draw, n)
    lower, upper = range_near(data.draw, played, spacing, start)
    row = data.draw(st.integers(max(1, start), max(1, stop)))
    liquidity = max(1, played.history.liquidity[row] + data.draw(st.integers(-2, 2)))
    position = LpPosition(lower, upper, liquidity, in_history=True)
    compare(played, fee, spacing, position, start, stop)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(
    tier=st.sampled_from(TIERS),
    background=st.integers(12, 24),
    orders=orders(1),
    lower=st.integers(-GRID, GRID),
    width=st.integers(1, GRID),
    liquidity=st.one_of(st.integers(1, 10**25), st.integers(-2, 2).map(lambda d: 10**21 + d)),
    in_history=st.booleans(),
    window=st.tuples(st.integers(0, 25), st.integers(0, 25)),
)
# A path a few wei above the upper bound: the floats put it on the bound, the integers above
# (the vector path counted it in range).
@example((100, 1), 21, [(False, False, 0.0, None)], -1, 1, 1, False, (0, 1))
# A history lacking the position by one unit of liquidity beyond 2**53: the vector path paid
# it fees, the exact one refuses the history.
@example((100, 1), 21, [(False, True, 18.0, None)], -100, 200, 10**21 + 1, True, (0, 1))
# Lacking it at row 7 (walked: its swap ends on the bound) and at row 8 (one step inside):
# the vector path named row 8, the exact path the first, row 7.
@example(
    (100, 1),
    12,
    [(False, False, 0.0, None)] * 6 + [(True, False, 4.0, None), (False, False, 0.0, None)],
    -1,
    1,
    10**12 + 1,
    True,
    (0, 8),
)
def test_vector_agrees_with_exact_on_pinned_cases(
    tier: tuple[int, int],
    background: int,
    orders: list[Order],
    lower: int,
    width: int,
    liquidity: int,
    in_history: bool,
    window: tuple[int, int],
) -> None:
    """Failing examples found by the tests above, pinned, with their neighbourhood (ticks in
    units of the tier's spacing; the window clamped to the history)."""
    fee, spacing = tier
    played = play(full_range_pool(10**background, fee, spacing), orders)
    n = len(played.history)
    assume(n >= 2)
    start = min(window) % n
    stop = min(n - 1, start + abs(window[1] - window[0]))
    position = LpPosition(lower * spacing, (lower + width) * spacing, liquidity, in_history)
    compare(played, fee, spacing, position, start, stop)
