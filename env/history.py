"""A pool's Swap history in memory: one column per field of Uniswap V3's ``Swap`` event.

Rows are events in chain order, keyed by ``(block_number, log_index)``. Small integers (time,
block, log index, tick) are numpy ``int64`` columns; the 256-bit ones (amounts, sqrt price,
liquidity) are lists of Python ints, because nothing narrower holds them exactly and the exact
replay reads them one by one anyway.

:func:`check_history` is the one validation every source goes through (files, stored pages,
Dune pages); its :class:`HistoryError` is one line naming the problem, the row and the values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from clmmd.env.uniswap_math import MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK

#: The columns of a history, in the order of Uniswap V3's Swap event (plus its position).
HISTORY_COLUMNS: tuple[str, ...] = (
    "block_time",
    "block_number",
    "log_index",
    "amount0",
    "amount1",
    "sqrt_price_x96",
    "liquidity",
    "tick",
)
#: The columns held as exact Python integers (int256 / uint160 / uint128 on chain).
BIG_INT_COLUMNS: tuple[str, ...] = ("amount0", "amount1", "sqrt_price_x96", "liquidity")

_INT256_MIN, _INT256_MAX = -(2**255), 2**255 - 1
_UINT128_MAX = 2**128 - 1
_LOG_SQRT_TICK = math.log(1.0001) / 2


class HistoryError(ValueError):
    """A history that cannot be replayed; ``str()`` is one line naming the problem."""


def utc_text(unix_s: int | float) -> str:
    """``2024-05-01T12:00:00Z`` for a Unix time (how times appear in errors and output)."""
    return datetime.fromtimestamp(float(unix_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SwapHistory:
    """Swap events of one pool in chain order (see the module docstring for the types)."""

    block_time: NDArray[np.int64]  # Unix seconds, UTC
    block_number: NDArray[np.int64]
    log_index: NDArray[np.int64]
    tick: NDArray[np.int64]
    amount0: list[int]
    amount1: list[int]
    sqrt_price_x96: list[int]
    liquidity: list[int]

    def __len__(self) -> int:
        return len(self.amount0)

    def rows(self, start: int, stop: int) -> SwapHistory:
        """Rows ``start`` up to (not including) ``stop``."""
        return SwapHistory(
            self.block_time[start:stop],
            self.block_number[start:stop],
            self.log_index[start:stop],
            self.tick[start:stop],
            self.amount0[start:stop],
            self.amount1[start:stop],
            self.sqrt_price_x96[start:stop],
            self.liquidity[start:stop],
        )

    def between(self, start_s: int, end_s: int) -> SwapHistory:
        """Events with ``start_s <= block_time < end_s``."""
        lo = int(np.searchsorted(self.block_time, start_s, side="left"))
        hi = int(np.searchsorted(self.block_time, end_s, side="left"))
        return self.rows(lo, hi)

    def index_at(self, unix_s: int | float) -> int:
        """Index of the last event at or before ``unix_s`` (``-1`` if there is none)."""
        return int(np.searchsorted(self.block_time, unix_s, side="right")) - 1


def empty_history() -> SwapHistory:
    none = np.zeros(0, dtype=np.int64)
    return SwapHistory(none, none, none, none, [], [], [], [])


def make_history(
    block_time: Sequence[int] | NDArray[np.int64],
    block_number: Sequence[int] | NDArray[np.int64],
    log_index: Sequence[int] | NDArray[np.int64],
    amount0: Sequence[int],
    amount1: Sequence[int],
    sqrt_price_x96: Sequence[int],
    liquidity: Sequence[int],
    tick: Sequence[int] | NDArray[np.int64],
) -> SwapHistory:
    """Build and :func:`check_history` a history from plain columns."""
    history = SwapHistory(
        np.asarray(block_time, dtype=np.int64),
        np.asarray(block_number, dtype=np.int64),
        np.asarray(log_index, dtype=np.int64),
        np.asarray(tick, dtype=np.int64),
        [int(v) for v in amount0],
        [int(v) for v in amount1],
        [int(v) for v in sqrt_price_x96],
        [int(v) for v in liquidity],
    )
    check_history(history)
    return history


def concat_histories(parts: Sequence[SwapHistory]) -> SwapHistory:
    """Rows of ``parts`` one after the other (no check: callers dedupe and check)."""
    if not parts:
        return empty_history()
    return SwapHistory(
        np.concatenate([p.block_time for p in parts]),
        np.concatenate([p.block_number for p in parts]),
        np.concatenate([p.log_index for p in parts]),
        np.concatenate([p.tick for p in parts]),
        [v for p in parts for v in p.amount0],
        [v for p in parts for v in p.amount1],
        [v for p in parts for v in p.sqrt_price_x96],
        [v for p in parts for v in p.liquidity],
    )


def _row(history: SwapHistory, i: int) -> str:
    return f"row {i} (block {history.block_number[i]}, log index {history.log_index[i]})"


def check_history(history: SwapHistory) -> None:
    """Raise :class:`HistoryError` unless the rows are a replayable Swap history.

    Checked: equal column lengths; strictly increasing ``(block_number, log_index)`` (a repeat
    is reported as a duplicate, a step back as unsorted); time never going back; every value in
    its on-chain type's range; the tick agreeing with the price; amounts of opposite signs.
    """
    n = len(history)
    lengths = {
        len(history.block_time),
        len(history.block_number),
        len(history.log_index),
        len(history.tick),
        len(history.amount1),
        len(history.sqrt_price_x96),
        len(history.liquidity),
    }
    if lengths != {n}:
        raise HistoryError(f"history columns have different lengths: {sorted(lengths | {n})}")
    if n == 0:
        return
    blocks, logs = history.block_number, history.log_index
    if blocks.min() < 0 or logs.min() < 0:
        bad = int(np.argmax((blocks < 0) | (logs < 0)))
        raise HistoryError(f"{_row(history, bad)}: block_number and log_index must be >= 0")
    same_block = blocks[1:] == blocks[:-1]
    step_back = (blocks[1:] < blocks[:-1]) | (same_block & (logs[1:] < logs[:-1]))
    repeat = same_block & (logs[1:] == logs[:-1])
    for mask, what in ((repeat, "duplicated event"), (step_back, "events not sorted")):
        if mask.any():
            i = int(np.argmax(mask)) + 1
            raise HistoryError(
                f"{what}: {_row(history, i)} follows block {blocks[i - 1]}, "
                f"log index {logs[i - 1]} (rows must be in (block_number, log_index) order, "
                "each once)"
            )
    times = history.block_time
    if (times[1:] < times[:-1]).any():
        i = int(np.argmax(times[1:] < times[:-1])) + 1
        raise HistoryError(
            f"events not sorted: {_row(history, i)} has block_time {utc_text(times[i])}, "
            f"before the previous event's {utc_text(times[i - 1])}"
        )
    ticks = history.tick
    if ticks.min() < MIN_TICK or ticks.max() > MAX_TICK:
        i = int(np.argmax((ticks < MIN_TICK) | (ticks > MAX_TICK)))
        raise HistoryError(f"{_row(history, i)}: tick={ticks[i]} outside the pool's tick range")
    _check_big_ints(history)
    _check_ticks_match_prices(history)


def _check_big_ints(history: SwapHistory) -> None:
    # min/max run in C over the Python ints; only a failing column is searched row by row.
    bounds = (
        ("sqrt_price_x96", history.sqrt_price_x96, MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1, "uint160"),
        ("liquidity", history.liquidity, 0, _UINT128_MAX, "uint128"),
        ("amount0", history.amount0, _INT256_MIN, _INT256_MAX, "int256"),
        ("amount1", history.amount1, _INT256_MIN, _INT256_MAX, "int256"),
    )
    for name, values, low, high, kind in bounds:
        if min(values) < low or max(values) > high:
            i = next(k for k, v in enumerate(values) if not low <= v <= high)
            raise HistoryError(f"{_row(history, i)}: {name}={values[i]} outside {kind} range")
    # One token goes in (> 0), the other comes out (<= 0): a swap never pays both ways.
    n = len(history)
    paid0 = np.fromiter((v > 0 for v in history.amount0), np.bool_, n)
    paid1 = np.fromiter((v > 0 for v in history.amount1), np.bool_, n)
    both = paid0 == paid1
    if both.any():
        i = int(np.argmax(both))
        raise HistoryError(
            f"{_row(history, i)}: amount0={history.amount0[i]} and "
            f"amount1={history.amount1[i]}: exactly one must be > 0"
        )


def _check_ticks_match_prices(history: SwapHistory) -> None:
    # float log of the price is within a tick of the exact tick; a swap that ends exactly on an
    # initialised tick going down reports the tick below, hence the tolerance of 1 (+ float).
    n = len(history)
    sqrt_f = np.fromiter(map(float, history.sqrt_price_x96), np.float64, n) / 2.0**96
    approx = np.log(sqrt_f) / _LOG_SQRT_TICK
    off = np.abs(approx - history.tick) > 1.01
    if off.any():
        i = int(np.argmax(off))
        raise HistoryError(
            f"{_row(history, i)}: tick={history.tick[i]} does not match "
            f"sqrt_price_x96={history.sqrt_price_x96[i]} (tick {approx[i]:.2f})"
        )
