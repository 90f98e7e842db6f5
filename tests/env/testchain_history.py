"""A small Swap history made by the real contracts, with what the chain paid the position.

Deterministic (fixed block times from a fixed start), so the copy shipped in
``docs/examples/testchain-swaps.parquet`` can be checked against a fresh run
(``tests/service/cli/test_backtest.py``), and ``clmmd backtest`` on it can be checked against
the chain's own ``collect`` and ``decreaseLiquidity`` amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

from clmmd.env.base import PoolSpec
from clmmd.env.history import SwapHistory, make_history
from clmmd.env.uniswap_math import get_sqrt_ratio_at_tick, usable_tick_bounds
from tests.env.uniswap_chain import SPACING, SwapOrder, UniswapChain

START = 1_900_000_000  # 2030-03-17T17:46:40Z: after any machine's clock, so block times are ours
LOWER, UPPER = -200, 200
#: 24 swaps, 10 minutes apart, both directions, crossing both boundaries, one ending exactly on
#: the lower one (a price limit), exact input and exact output.
ORDERS: tuple[SwapOrder, ...] = (
    SwapOrder(True, True, 3 * 10**18),
    SwapOrder(True, True, 8 * 10**18),
    SwapOrder(False, False, 2 * 10**18),
    SwapOrder(True, True, 10**19, get_sqrt_ratio_at_tick(LOWER)),
    SwapOrder(True, True, 5 * 10**18),
    SwapOrder(False, True, 4 * 10**18),
    SwapOrder(False, True, 9 * 10**18),
    SwapOrder(False, False, 6 * 10**18),
    SwapOrder(False, True, 12 * 10**18),
    SwapOrder(True, True, 7 * 10**18),
    SwapOrder(True, False, 2 * 10**18),
    SwapOrder(False, True, 10**12),
    SwapOrder(True, True, 1),
    SwapOrder(True, True, 15 * 10**18),
    SwapOrder(True, True, 6 * 10**18),
    SwapOrder(False, True, 3 * 10**18),
    SwapOrder(False, False, 7 * 10**18),
    SwapOrder(True, True, 2 * 10**18),
    SwapOrder(False, True, 20 * 10**18),
    SwapOrder(True, False, 4 * 10**18),
    SwapOrder(True, True, 9 * 10**18),
    SwapOrder(False, True, 5 * 10**17),
    SwapOrder(True, True, 3 * 10**18),
    SwapOrder(False, True, 10**18),
)


@dataclass(frozen=True)
class ChainRun:
    history: SwapHistory
    pool: PoolSpec
    liquidity: int  # the position's
    deposit: tuple[int, int]  # what minting it took
    collected: tuple[int, int]  # what collect paid after the last swap
    withdrawn: tuple[int, int]  # what decreaseLiquidity returned then
    opened_at: int  # block time of the opening swap (the window's --from)
    closed_at: int  # block time of the position's last swap (--to)


def run_testchain() -> ChainRun:
    chain = UniswapChain(2**96)
    chain.advance_to(START)
    low, high = usable_tick_bounds(SPACING)
    chain.mint(low, high, 10**21, 10**21)
    first_block = chain.block_number() + 1
    chain.swap_batch([SwapOrder(False, True, 10**15)])  # opens the history
    chain.advance_to(START + 3600)
    token_id, liquidity, paid0, paid1 = chain.mint(LOWER, UPPER, 2 * 10**18, 2 * 10**18)
    for k, order in enumerate(ORDERS):
        chain.advance_to(START + 3600 + 600 * (k + 1))
        chain.swap_batch([order])
    collected = chain.collectable(token_id)
    withdrawn = chain.decrease(token_id, liquidity)
    # One more swap after midnight, once the position is gone: the file then covers the whole
    # first day, which is what `clmmd history import` needs to store that day.
    chain.advance_to(START + 24_200)
    chain.swap_batch([SwapOrder(True, True, 10**15)])
    rows = chain.swap_events(first_block)
    history = make_history(*zip(*rows, strict=True))
    pool = chain.pool_spec()
    return ChainRun(
        history,
        pool,
        liquidity,
        (paid0, paid1),
        collected,
        withdrawn,
        int(history.block_time[0]),
        int(history.block_time[-2]),
    )


if __name__ == "__main__":
    # Rewrites the example the runbook backtests: python -m tests.env.testchain_history
    from pathlib import Path

    from clmmd.env.history_io import parquet_bytes

    run = run_testchain()
    target = Path(__file__).resolve().parents[2] / "docs" / "examples" / "testchain-swaps.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(parquet_bytes(run.history, run.pool))
    print(f"{target}: {len(run.history)} swaps; position L={run.liquidity} [{LOWER}, {UPPER}]")
    print(f"collected {run.collected}, withdrawn {run.withdrawn}, deposit {run.deposit}")
