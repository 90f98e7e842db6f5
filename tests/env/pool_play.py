"""Small pool-consistent histories for the replay tests, played on :class:`env.v3_pool.V3Pool`
(the model ``test_replay_evm.py`` checks against the bytecode)."""

from __future__ import annotations

from dataclasses import dataclass

from clmmd.env.history import SwapHistory, empty_history, make_history
from clmmd.env.uniswap_math import get_sqrt_ratio_at_tick, usable_tick_bounds
from clmmd.env.v3_pool import V3Pool

FEE, SPACING = 500, 10

#: A swap order: (zero_for_one, exact input, log10 of the amount, price limit tick or None).
Order = tuple[bool, bool, float, int | None]


@dataclass
class Played:
    history: SwapHistory
    pool: V3Pool
    crossed_other_tick: bool  # some swap's price path reached another provider's tick
    most_crossed: int  # the most of those ticks one swap's path reached
    minted: tuple[int, int] | None  # what "me" paid for the mint, if there was one


def play(
    pool: V3Pool,
    orders: list[Order],
    mint: tuple[int, int, int] | None = None,
    other_ticks: frozenset[int] = frozenset(),
) -> Played:
    """Row 0 of the history is a tiny opening swap; then ``mint`` (lower, upper, liquidity)
    for "me", if given, and the ``orders``. Orders the pool refuses (a price limit on the
    wrong side) are left out; the history stops at a swap that pays nothing either way
    (through a range without liquidity), which a Swap history cannot hold."""
    rows = []
    crossed, most = False, 0
    minted: tuple[int, int] | None = None
    for k, (zero_for_one, exact_in, exponent, limit_tick) in enumerate(
        [(False, True, 3.0, None), *orders]
    ):
        if k == 1 and mint is not None:
            minted = pool.mint("me", *mint)
        amount = max(1, int(10**exponent))
        limit = get_sqrt_ratio_at_tick(limit_tick) if limit_tick is not None else None
        before = pool.sqrt_price_x96
        try:
            event = pool.swap(zero_for_one, amount if exact_in else -amount, limit)
        except ValueError:
            continue
        if (event.amount0 > 0) == (event.amount1 > 0):
            break
        low, high = sorted((before, event.sqrt_price_x96))
        reached = sum(low <= get_sqrt_ratio_at_tick(t) <= high for t in other_ticks)
        crossed, most = crossed or reached > 0, max(most, reached)
        rows.append(
            (
                1000 + 12 * k,
                k,
                0,
                event.amount0,
                event.amount1,
                event.sqrt_price_x96,
                event.liquidity,
                event.tick,
            )
        )
    history = make_history(*zip(*rows, strict=True)) if rows else empty_history()
    return Played(history, pool, crossed, most, minted)


def full_range_pool(
    liquidity: int = 10**21, fee: int = FEE, spacing: int = SPACING, sqrt_price: int = 2**96
) -> V3Pool:
    pool = V3Pool(sqrt_price, fee, spacing)
    low, high = usable_tick_bounds(spacing)
    pool.mint("background", low, high, liquidity)
    return pool
