"""A replayed market: a pool's real Swap history, and what a range position makes on it.

:class:`ReplayMarket` is the pure API (no I/O, no clock): it prepares a history once, cuts
windows out of it (by time, or seeded for training episodes), and evaluates a position on a
window: exact fees (:mod:`env.replay_fees`), exact token amounts at the start and the end
(``_modifyPosition``'s rounding: up when minting, down when burning), time in range, and the
USD figures with the PnL decomposition ``PnL = HODL return − IL + fees − gas``.

USD values use the pool's stable token at exactly $1 and the other token at the pool's own
price at that moment; fees are kept per token and valued at the window's end price, like the
position's tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from clmmd.env.base import PoolSpec
from clmmd.env.history import HistoryError, SwapHistory, utc_text
from clmmd.env.pricing import liquidity_for_value_usd, position_value_usd, usd_from_raw_price
from clmmd.env.replay_fees import (
    FeeResult,
    LpPosition,
    PreparedHistory,
    replay_exact,
    replay_vector,
)
from clmmd.env.swap_math import position_amounts
from clmmd.env.uniswap_math import get_sqrt_ratio_at_tick, tick_to_price, usable_tick_bounds

ReplayMethod = Literal["exact", "vector"]
_VOLATILE_ETH = frozenset({"WETH", "ETH"})


@dataclass(frozen=True)
class ReplayWindow:
    """Events ``start + 1 … stop`` replayed from the state after event ``start``, over
    ``[start_time, end_time]`` (Unix seconds)."""

    start: int
    stop: int
    start_time: int
    end_time: int

    @property
    def swaps(self) -> int:
        return self.stop - self.start

    @property
    def hours(self) -> float:
        return (self.end_time - self.start_time) / 3600.0


@dataclass(frozen=True)
class PositionReplay:
    """Everything a backtest reports about one position on one window."""

    pool: PoolSpec
    window: ReplayWindow
    position: LpPosition
    fees: FeeResult
    deposit: tuple[int, int]  # raw amounts paid in at the start (rounded up, as minting)
    withdrawal: tuple[int, int]  # raw amounts taken out at the end (rounded down, as burning)
    start_price_usd: float
    end_price_usd: float
    time_in_range_pct: float
    value_start_usd: float
    value_end_usd: float  # the position's tokens at the end, fees excluded
    hold_value_end_usd: float  # the deposited tokens held instead, at the end price
    fees_usd: float
    gas_cost_usd: float

    @property
    def il_usd(self) -> float:
        """Loss against holding (positive = worse than holding)."""
        return self.hold_value_end_usd - self.value_end_usd

    @property
    def hodl_return_usd(self) -> float:
        return self.hold_value_end_usd - self.value_start_usd

    @property
    def pnl_usd(self) -> float:
        return self.hodl_return_usd - self.il_usd + self.fees_usd - self.gas_cost_usd

    def to_json(self) -> dict[str, Any]:
        """The backtest's JSON object: raw token amounts as exact decimal strings."""
        pool, fees = self.pool, self.fees
        scale0, scale1 = 10.0**pool.decimals0, 10.0**pool.decimals1
        return {
            "pool": pool.address,
            "pair": pool.pair,
            "token0": pool.token0,
            "token1": pool.token1,
            "fee_pips": pool.fee_pips,
            "from": utc_text(self.window.start_time),
            "to": utc_text(self.window.end_time),
            "swaps": self.window.swaps,
            "tick_lower": self.position.tick_lower,
            "tick_upper": self.position.tick_upper,
            "liquidity": str(self.position.liquidity),
            "position_in_history": self.position.in_history,
            "start_price_usd": self.start_price_usd,
            "end_price_usd": self.end_price_usd,
            "fees_token0": str(fees.fee0),
            "fees_token1": str(fees.fee1),
            "fees_token0_units": fees.fee0 / scale0,
            "fees_token1_units": fees.fee1 / scale1,
            "fees_usd": self.fees_usd,
            "fee_method": fees.method,
            "swaps_in_range": fees.swaps_in_range,
            "swaps_modelled": fees.swaps_modelled,
            "time_in_range_pct": self.time_in_range_pct,
            "deposit_token0": str(self.deposit[0]),
            "deposit_token1": str(self.deposit[1]),
            "withdraw_token0": str(self.withdrawal[0]),
            "withdraw_token1": str(self.withdrawal[1]),
            "value_start_usd": self.value_start_usd,
            "value_end_usd": self.value_end_usd,
            "hold_value_end_usd": self.hold_value_end_usd,
            "hodl_return_usd": self.hodl_return_usd,
            "il_usd": self.il_usd,
            "gas_cost_usd": self.gas_cost_usd,
            "pnl_usd": self.pnl_usd,
            "pnl_decomposition": "hodl_return_usd - il_usd + fees_usd - gas_cost_usd",
        }


class ReplayMarket:
    """One pool's history, prepared for replaying positions (pure: no I/O, no clock)."""

    def __init__(
        self, history: SwapHistory, pool: PoolSpec, fee_protocol: tuple[int, int] = (0, 0)
    ) -> None:
        if len(history) < 1:
            raise HistoryError("the history has no swaps")
        self.pool = pool
        self.history = history
        self.prepared = PreparedHistory(history, pool.fee_pips, pool.tick_spacing, fee_protocol)

    @property
    def first_time(self) -> int:
        return int(self.history.block_time[0])

    @property
    def last_time(self) -> int:
        return int(self.history.block_time[-1])

    # --- windows -----------------------------------------------------------------------------

    def window(self, start_time: int, end_time: int, *, allow_empty: bool = False) -> ReplayWindow:
        """The position opens at ``start_time`` in the state after the last swap at or before
        it, and lives through every swap up to and including ``end_time``."""
        if end_time <= start_time:
            raise HistoryError(
                f"empty window: --to {utc_text(end_time)} is not after --from "
                f"{utc_text(start_time)}"
            )
        start = self.history.index_at(start_time)
        if start < 0:
            raise HistoryError(
                f"no swap at or before --from {utc_text(start_time)}: the history starts at "
                f"{utc_text(self.first_time)} (the opening price is the last swap's)"
            )
        stop = self.history.index_at(end_time)
        if stop == start and not allow_empty:
            raise HistoryError(
                f"empty window: no swap between --from {utc_text(start_time)} and --to "
                f"{utc_text(end_time)} (history: {utc_text(self.first_time)} to "
                f"{utc_text(self.last_time)}, {len(self.history)} swaps)"
            )
        return ReplayWindow(start, stop, start_time, end_time)

    def random_window(self, seed: int, horizon_hours: float) -> ReplayWindow:
        """A window of ``horizon_hours`` starting at a seeded uniform time in the history."""
        horizon_s = round(horizon_hours * 3600)
        if horizon_s <= 0:
            raise ValueError(f"horizon_hours={horizon_hours!r} must be > 0")
        latest = self.last_time - horizon_s
        if latest < self.first_time:
            raise HistoryError(
                f"the history covers {(self.last_time - self.first_time) / 3600:.1f} h "
                f"({utc_text(self.first_time)} to {utc_text(self.last_time)}), less than "
                f"one {horizon_hours:g} h episode"
            )
        rng = np.random.Generator(np.random.PCG64(seed))
        start_time = int(rng.integers(self.first_time, latest, endpoint=True))
        return self.window(start_time, start_time + horizon_s, allow_empty=True)

    # --- prices ------------------------------------------------------------------------------

    def state(self, index: int) -> tuple[int, int]:
        """``(sqrt_price_x96, tick)`` after event ``index``."""
        return self.history.sqrt_price_x96[index], int(self.history.tick[index])

    def price_usd(self, index: int) -> float:
        """USD price of the pool's volatile token after event ``index``."""
        sqrt_price = self.history.sqrt_price_x96[index] / 2.0**96
        return usd_from_raw_price(self.pool, sqrt_price * sqrt_price)

    # --- positions ---------------------------------------------------------------------------

    def check_ticks(self, tick_lower: int, tick_upper: int) -> None:
        """``ValueError`` naming the tick unless the range is valid for the pool."""
        spacing = self.pool.tick_spacing
        for name, tick in (("tick_lower", tick_lower), ("tick_upper", tick_upper)):
            if tick % spacing:
                raise ValueError(f"{name}={tick} is not a multiple of the tick spacing {spacing}")
        low, high = usable_tick_bounds(spacing)
        if not low <= tick_lower < tick_upper <= high:
            raise ValueError(
                f"tick range [{tick_lower}, {tick_upper}] must have lower < upper within "
                f"[{low}, {high}]"
            )

    def liquidity_for_size(
        self, window: ReplayWindow, tick_lower: int, tick_upper: int, size_usd: float
    ) -> int:
        """The liquidity ``size_usd`` buys over the range at the window's opening price."""
        if not (math.isfinite(size_usd) and size_usd > 0):
            raise ValueError(f"size_usd={size_usd!r} must be finite and > 0")
        liquidity, _, _ = liquidity_for_value_usd(
            self.pool,
            size_usd,
            self.price_usd(window.start),
            tick_to_price(tick_lower),
            tick_to_price(tick_upper),
        )
        if liquidity < 1:
            raise ValueError(f"size_usd={size_usd!r} buys no liquidity over this range")
        return int(liquidity)

    def fees(
        self, position: LpPosition, window: ReplayWindow, method: ReplayMethod = "exact"
    ) -> FeeResult:
        replay = replay_exact if method == "exact" else replay_vector
        return replay(self.prepared, position, window.start, window.stop)

    def time_in_range_pct(self, position: LpPosition, window: ReplayWindow) -> float:
        """Share of the window's time with the pool's tick inside ``[lower, upper)``."""
        ticks = self.history.tick[window.start : window.stop + 1]
        times = self.history.block_time[window.start + 1 : window.stop + 1]
        edges = np.concatenate(([window.start_time], times, [window.end_time])).astype(np.float64)
        durations = np.diff(edges)
        inside = (ticks >= position.tick_lower) & (ticks < position.tick_upper)
        total = float(durations.sum())
        return 100.0 * float(durations[inside].sum()) / total if total > 0 else 0.0

    def evaluate(
        self,
        position: LpPosition,
        window: ReplayWindow,
        *,
        gas_cost_usd: float,
        method: ReplayMethod = "exact",
    ) -> PositionReplay:
        """The position's fees, amounts, values and PnL decomposition over ``window``."""
        self.check_ticks(position.tick_lower, position.tick_upper)
        sqrt_lower = get_sqrt_ratio_at_tick(position.tick_lower)
        sqrt_upper = get_sqrt_ratio_at_tick(position.tick_upper)

        def amounts(index: int, round_up: bool) -> tuple[int, int]:
            sqrt_price, tick = self.state(index)
            return position_amounts(
                sqrt_price,
                tick,
                position.tick_lower,
                position.tick_upper,
                sqrt_lower,
                sqrt_upper,
                position.liquidity,
                round_up,
            )

        deposit, withdrawal = amounts(window.start, True), amounts(window.stop, False)
        fees = self.fees(position, window, method)
        start_usd, end_usd = self.price_usd(window.start), self.price_usd(window.stop)
        pool = self.pool
        return PositionReplay(
            pool=pool,
            window=window,
            position=position,
            fees=fees,
            deposit=deposit,
            withdrawal=withdrawal,
            start_price_usd=start_usd,
            end_price_usd=end_usd,
            time_in_range_pct=self.time_in_range_pct(position, window),
            value_start_usd=position_value_usd(pool, deposit[0], deposit[1], start_usd),
            value_end_usd=position_value_usd(pool, withdrawal[0], withdrawal[1], end_usd),
            hold_value_end_usd=position_value_usd(pool, deposit[0], deposit[1], end_usd),
            fees_usd=position_value_usd(pool, fees.fee0, fees.fee1, end_usd),
            gas_cost_usd=gas_cost_usd,
        )

    def eth_price_usd(self, index: int, fallback: float) -> float:
        """ETH's USD price for gas: the pool's own price when its volatile token is (W)ETH."""
        volatile = self.pool.token1 if self.pool.stable_token == 0 else self.pool.token0
        return self.price_usd(index) if volatile.upper() in _VOLATILE_ETH else fallback
