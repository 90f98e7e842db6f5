"""env.replay_fees against env.v3_pool (the model the EVM test checks against the bytecode).

Fast enough for hundreds of hypothesis sequences: the property the EVM test shows on 25 (250
in the long run) sequences, shown here on 300, plus what the EVM cannot cheaply show (other
providers' ticks, the on-top mode, the numpy path on a month of swaps).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clmmd.env.base import KNOWN_POOLS
from clmmd.env.history import HistoryError, make_history
from clmmd.env.pricing import usd_range_to_ticks
from clmmd.env.replay_fees import (
    LpPosition,
    PreparedHistory,
    replay_exact,
    replay_vector,
)
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history
from clmmd.env.uniswap_math import usable_tick_bounds
from clmmd.env.v3_pool import V3Pool
from tests.env.pool_play import FEE, SPACING, full_range_pool, play

USDC_WETH = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


orders = st.lists(
    st.tuples(
        st.booleans(),
        st.booleans(),
        st.floats(0.0, 20.5),
        st.one_of(st.none(), st.integers(-600, 600)),
    ),
    min_size=1,
    max_size=50,
)
ranges = st.tuples(
    st.integers(-40, 30), st.integers(1, 40), st.sampled_from([10**16, 10**19, 10**22])
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=ranges, orders=orders)
def test_contained_position_gets_exactly_what_the_pool_owes(
    position: tuple[int, int, int], orders: list[tuple[bool, bool, float, int | None]]
) -> None:
    lower, upper = position[0] * SPACING, (position[0] + position[1]) * SPACING
    pool = full_range_pool()
    played = play(pool, orders, (lower, upper, position[2]))
    if len(played.history) < 2:
        return
    prepared = PreparedHistory(played.history, FEE, SPACING)
    mine = LpPosition(lower, upper, position[2], in_history=True)
    last = len(played.history) - 1
    exact = replay_exact(prepared, mine, 0, last)
    pool.burn("me", lower, upper, 0)
    assert (exact.fee0, exact.fee1) == pool.collect("me", lower, upper)
    assert exact.swaps_modelled == 0
    vector = replay_vector(prepared, mine, 0, last)
    assert abs(vector.fee0 - exact.fee0) <= max(2, 1e-9 * exact.fee0)
    assert abs(vector.fee1 - exact.fee1) <= max(2, 1e-9 * exact.fee1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=ranges,
    orders=orders,
    others=st.lists(st.tuples(st.integers(-60, 60), st.integers(1, 40)), min_size=1, max_size=4),
)
def test_swaps_across_other_providers_ticks_are_found_or_counted(
    position: tuple[int, int, int],
    orders: list[tuple[bool, bool, float, int | None]],
    others: list[tuple[int, int]],
) -> None:
    """Other providers' ticks are invisible in Swap events. A swap across one of them is still
    replayed exactly (the tick is found from the liquidity before and after); a swap across
    several is modelled and counted, never silently wrong."""
    lower, upper = position[0] * SPACING, (position[0] + position[1]) * SPACING
    pool = full_range_pool()
    ticks: set[int] = set()
    for k, (start, width) in enumerate(others):
        a, b = start * SPACING, (start + width) * SPACING
        pool.mint(f"other{k}", a, b, 10**21)
        ticks |= {a, b}
    played = play(pool, orders, (lower, upper, position[2]), frozenset(ticks))
    if len(played.history) < 2:
        return
    prepared = PreparedHistory(played.history, FEE, SPACING)
    mine = LpPosition(lower, upper, position[2], in_history=True)
    exact = replay_exact(prepared, mine, 0, len(played.history) - 1)
    pool.burn("me", lower, upper, 0)
    owed = pool.collect("me", lower, upper)
    if exact.swaps_modelled == 0:
        # Every swap in range was confirmed by its own event: then the fees are exact.
        assert (exact.fee0, exact.fee1) == owed
    if played.most_crossed <= 1:
        assert exact.swaps_modelled == 0
    vector = replay_vector(prepared, mine, 0, len(played.history) - 1)
    assert vector.swaps_modelled == exact.swaps_modelled
    assert abs(vector.fee0 - exact.fee0) <= max(2, 1e-9 * exact.fee0)
    assert abs(vector.fee1 - exact.fee1) <= max(2, 1e-9 * exact.fee1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.tuples(st.integers(-20, 10), st.integers(1, 30)),
    orders=st.lists(
        st.tuples(st.booleans(), st.just(True), st.floats(14.0, 19.5), st.none()),
        min_size=1,
        max_size=30,
    ),
)
def test_a_small_position_on_top_earns_what_it_would_have_earned_in_the_pool(
    position: tuple[int, int], orders: list[tuple[bool, bool, float, int | None]]
) -> None:
    """On top of a history without it, a position 1e-4 of the pool's liquidity earns what the
    same trades pay it in a pool that holds it, to within 0.1 % in total (the price impact the
    passive model leaves out; per token it can be more where one token's fee is a sliver)."""
    lower, upper = position[0] * SPACING, (position[0] + position[1]) * SPACING
    small = 10**17
    without = play(full_range_pool(), orders)
    holding = full_range_pool()
    play(holding, orders, (lower, upper, small))
    holding.burn("me", lower, upper, 0)
    owed = holding.collect("me", lower, upper)
    prepared = PreparedHistory(without.history, FEE, SPACING)
    on_top = replay_exact(prepared, LpPosition(lower, upper, small), 0, len(without.history) - 1)
    # Both tokens have 18 decimals and the price stays near 1: their sum is the fees' value.
    assert on_top.fee0 + on_top.fee1 == pytest.approx(sum(owed), rel=1e-3, abs=10)


def test_vector_path_agrees_with_exact_on_a_month_of_swaps() -> None:
    history = synthetic_history(USDC_WETH, SyntheticMarket(swaps=30_000, seed=3))
    prepared = PreparedHistory(history, USDC_WETH.fee_pips, USDC_WETH.tick_spacing)
    last = len(history) - 1
    for width in (0.5, 2.0, 5.0, 20.0):
        lower, upper = usd_range_to_ticks(
            USDC_WETH, 3000 * (1 - width / 100), 3000 * (1 + width / 100)
        )
        for position in (LpPosition(lower, upper, 10**15), LpPosition(lower, upper, 10**19)):
            exact = replay_exact(prepared, position, 0, last)
            vector = replay_vector(prepared, position, 0, last)
            assert exact.fee0 > 0 and exact.fee1 > 0
            assert abs(vector.fee0 - exact.fee0) <= 1e-9 * exact.fee0 + 2
            assert abs(vector.fee1 - exact.fee1) <= 1e-9 * exact.fee1 + 2
            assert vector.swaps_in_range == exact.swaps_in_range


def test_a_range_the_price_never_reaches_earns_nothing() -> None:
    played = play(full_range_pool(), [(True, True, 18.0, None), (False, True, 18.0, None)])
    prepared = PreparedHistory(played.history, FEE, SPACING)
    far = replay_exact(prepared, LpPosition(50_000, 50_100, 10**20), 0, len(played.history) - 1)
    assert (far.fee0, far.fee1, far.swaps_in_range) == (0, 0, 0)


def test_a_history_with_a_missing_event_is_refused() -> None:
    played = play(full_range_pool(), [(True, True, 18.0, None), (False, True, 17.5, None)])
    h = played.history
    gap = make_history(
        h.block_time[[0, 2]],
        h.block_number[[0, 2]],
        h.log_index[[0, 2]],
        [h.amount0[0], h.amount0[2]],
        [h.amount1[0], h.amount1[2]],
        [h.sqrt_price_x96[0], h.sqrt_price_x96[2]],
        [h.liquidity[0], h.liquidity[2]],
        h.tick[[0, 2]],
    )
    # Row 1 pays token1 in, but its price is below row 0's: a swap is missing in between.
    with pytest.raises(HistoryError, match=r"row 1 .* pays token1 in but the price fell.*missing"):
        PreparedHistory(gap, FEE, SPACING)


def test_a_contained_position_larger_than_the_pool_is_refused() -> None:
    pool = full_range_pool(10**18)
    played = play(pool, [(True, True, 17.0, None), (False, True, 17.0, None)])
    prepared = PreparedHistory(played.history, FEE, SPACING)
    # Not contained: inside its range the events report less liquidity than it alone has.
    with pytest.raises(HistoryError, match="does not contain this position"):
        replay_exact(prepared, LpPosition(-1000, 1000, 10**20, in_history=True), 0, 2)


def test_protocol_fee_switch_takes_its_cut() -> None:
    pool = V3Pool(2**96, FEE, SPACING, fee_protocol=4 | (4 << 4))
    low, high = usable_tick_bounds(SPACING)
    pool.mint("background", low, high, 10**21)
    played = play(pool, [(True, True, 18.0, None), (False, False, 18.0, None)], (-100, 100, 10**20))
    mine = LpPosition(-100, 100, 10**20, in_history=True)
    switched = PreparedHistory(played.history, FEE, SPACING, fee_protocol=(4, 4))
    result = replay_exact(switched, mine, 0, len(played.history) - 1)
    pool.burn("me", -100, 100, 0)
    assert (result.fee0, result.fee1) == pool.collect("me", -100, 100)
    unswitched = replay_exact(
        PreparedHistory(played.history, FEE, SPACING), mine, 0, len(played.history) - 1
    )
    assert result.fee0 < unswitched.fee0 and result.fee1 < unswitched.fee1
