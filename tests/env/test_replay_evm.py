"""The replay against the real Uniswap V3 contracts (npm bytecode on an in-process EVM).

Each hypothesis example mints a NonfungiblePositionManager position into a 0.05 % pool that
already holds full-range liquidity, runs 1–50 SwapRouter swaps (both directions, exact input
and output, price limits on and around the position's boundaries, so swaps start, end and
cross outside and inside the range), then asks the position manager what ``collect`` pays and
burns the position with ``decreaseLiquidity``. The pool's own Swap events are the history:

* the replay (position contained in the history) owes exactly what ``collect`` pays (the issue
  asks for 1 wei per swap and token), with no swap left to the model;
* the amounts at the end equal ``decreaseLiquidity``'s exactly (and the deposit the mint's);
* :class:`env.v3_pool.V3Pool` emits the same Swap events and owes the same fees, which is what
  lets the fast property tests (``test_replay_fees.py``) use it instead of the EVM.

``make test`` runs 15 examples (a few seconds a batch of swaps on py-evm); the slow variant runs
250 (``CLMMD_LONG_TESTS=1``, about three minutes here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clmmd.env.base import PoolSpec
from clmmd.env.history import make_history
from clmmd.env.replay import ReplayMarket
from clmmd.env.replay_fees import LpPosition, replay_vector
from clmmd.env.uniswap_math import get_sqrt_ratio_at_tick, usable_tick_bounds
from clmmd.env.v3_pool import V3Pool
from tests.env.uniswap_chain import FEE, SPACING, SwapOrder, UniswapChain

LONG = os.environ.get("CLMMD_LONG_TESTS") == "1"
START_PRICE = 2**96  # tick 0: both tokens have 18 decimals, price 1
BACKGROUND = 10**21  # desired amounts of the full-range provider


@dataclass
class ChainFixture:
    chain: UniswapChain
    spec: PoolSpec
    background_liquidity: int
    opening_block: int
    snapshot: object


@pytest.fixture(scope="module")
def deployed() -> ChainFixture:
    chain = UniswapChain(START_PRICE)
    low, high = usable_tick_bounds(SPACING)
    _, background, _, _ = chain.mint(low, high, BACKGROUND, BACKGROUND)
    opening_block = chain.block_number() + 1
    # One small swap opens the history: the replay starts from the state an event reports.
    chain.swap_batch([SwapOrder(zero_for_one=False, exact_input=True, amount=10**15)])
    spec = chain.pool_spec()
    return ChainFixture(chain, spec, background, opening_block, chain.snapshot())


def model_pool(background: int) -> V3Pool:
    """The same pool in :class:`V3Pool`: full-range liquidity, then the opening swap."""
    pool = V3Pool(START_PRICE, FEE, SPACING)
    low, high = usable_tick_bounds(SPACING)
    pool.mint("background", low, high, background)
    pool.swap(False, 10**15)
    return pool


limits = st.sampled_from(["none", "none", "none", "lower", "upper", "near_lower", "near_upper"])
orders = st.lists(
    st.tuples(st.booleans(), st.booleans(), st.floats(0.0, 20.5), limits, st.integers(-25, 25)),
    min_size=1,
    max_size=50,
)
positions = st.tuples(st.integers(-40, 30), st.integers(1, 40), st.integers(16, 22))


def _limit(kind: str, offset: int, lower: int, upper: int) -> int:
    if kind == "none":
        return 0
    if kind in ("lower", "upper"):
        return get_sqrt_ratio_at_tick(lower if kind == "lower" else upper)
    return get_sqrt_ratio_at_tick((lower if kind == "near_lower" else upper) + offset)


def _playable(
    model: V3Pool, raw: list[tuple[bool, bool, float, str, int]], lower: int, upper: int
) -> list[SwapOrder]:
    """Apply the orders to the model; keep those the router would execute."""
    kept = []
    for zero_for_one, exact_input, exponent, kind, offset in raw:
        order = SwapOrder(
            zero_for_one, exact_input, max(1, int(10**exponent)), _limit(kind, offset, lower, upper)
        )
        before = (
            model.sqrt_price_x96,
            model.tick,
            model.liquidity,
            model.fee_growth_global0,
            model.fee_growth_global1,
        )
        try:
            event = model.swap(
                zero_for_one,
                order.amount if exact_input else -order.amount,
                order.sqrt_price_limit_x96 or None,
            )
        except ValueError:
            continue  # the pool would revert (price limit on the wrong side)
        delivered = -(event.amount1 if zero_for_one else event.amount0)
        if not exact_input and not order.sqrt_price_limit_x96 and delivered != order.amount:
            # The router reverts an unlimited exact-output swap the pool cannot fill; undo it.
            (
                model.sqrt_price_x96,
                model.tick,
                model.liquidity,
                model.fee_growth_global0,
                model.fee_growth_global1,
            ) = before
            continue
        kept.append(order)
    return kept


def check_against_contract(
    deployed: ChainFixture,
    position: tuple[int, int, int],
    raw_orders: list[tuple[bool, bool, float, str, int]],
) -> None:
    chain = deployed.chain
    chain.revert(deployed.snapshot)
    lower = position[0] * SPACING
    upper = lower + position[1] * SPACING
    desired = 10 ** position[2]
    token_id, liquidity, paid0, paid1 = chain.mint(lower, upper, desired, desired)
    model = model_pool(deployed.background_liquidity)
    assert model.mint("npm", lower, upper, liquidity) == (paid0, paid1)
    playable = _playable(model, raw_orders, lower, upper)
    if not playable:
        return
    cut = max(1, len(playable) // 2)  # two transactions: swaps in two blocks
    for batch in (playable[:cut], playable[cut:]):
        if batch:
            chain.swap_batch(batch)
    rows = chain.swap_events(deployed.opening_block)
    assert len(rows) == len(playable) + 1

    # The model's pool emitted the same events (checked below by replaying them again).
    replayed = model_pool(deployed.background_liquidity)
    replayed.mint("npm", lower, upper, liquidity)
    for order, row in zip(playable, rows[1:], strict=True):
        event = replayed.swap(
            order.zero_for_one,
            order.amount if order.exact_input else -order.amount,
            order.sqrt_price_limit_x96 or None,
        )
        assert (
            event.amount0,
            event.amount1,
            event.sqrt_price_x96,
            event.liquidity,
            event.tick,
        ) == row[3:], f"V3Pool differs from the contract on {order}"

    history = make_history(*zip(*rows, strict=True))
    market = ReplayMarket(history, deployed.spec)
    window = market.window(int(history.block_time[0]), int(history.block_time[-1]))
    assert window.start == 0 and window.stop == len(rows) - 1
    mine = LpPosition(lower, upper, liquidity, in_history=True)
    result = market.evaluate(mine, window, gas_cost_usd=0.0)
    collected = chain.collectable(token_id)
    swaps = len(playable)
    fees = (result.fees.fee0, result.fees.fee1)
    assert result.fees.swaps_modelled == 0
    # The issue asks for 1 wei per swap and token; the replay is exact, and docs/replay.md
    # says so on the strength of this assertion.
    assert abs(fees[0] - collected[0]) <= swaps and abs(fees[1] - collected[1]) <= swaps, (
        f"replay {fees} vs collect {collected} after {swaps} swaps"
    )
    assert fees == collected, f"replay {fees} vs collect {collected} after {swaps} swaps"
    replayed.burn("npm", lower, upper, 0)
    assert replayed.collect("npm", lower, upper) == collected
    vector = replay_vector(market.prepared, mine, window.start, window.stop)
    for exact, approx in zip(fees, (vector.fee0, vector.fee1), strict=True):
        assert abs(exact - approx) <= max(2, exact * 1e-9)

    withdrawn = chain.decrease(token_id, liquidity)
    assert result.withdrawal == withdrawn
    # The deposit is valued at the opening state, which is the state the mint saw.
    assert result.deposit == (paid0, paid1)


_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=15, deadline=None, suppress_health_check=_HEALTH)
@given(position=positions, raw_orders=orders)
def test_replay_owes_what_the_contract_collects(
    deployed: ChainFixture,
    position: tuple[int, int, int],
    raw_orders: list[tuple[bool, bool, float, str, int]],
) -> None:
    check_against_contract(deployed, position, raw_orders)


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="long version: set CLMMD_LONG_TESTS=1 to run it")
@settings(max_examples=250, deadline=None, suppress_health_check=_HEALTH)
@given(position=positions, raw_orders=orders)
def test_replay_owes_what_the_contract_collects_250(
    deployed: ChainFixture,
    position: tuple[int, int, int],
    raw_orders: list[tuple[bool, bool, float, str, int]],
) -> None:
    check_against_contract(deployed, position, raw_orders)
