"""A replayed market for the Gymnasium environments: episodes are seeded windows of a pool's
real Swap history (``market="replay", history=PATH``).

:class:`ReplayMarketSource` implements :class:`clmmd.service.rl.market.MarketSource` over a
:class:`clmmd.env.replay.ReplayMarket` and reuses its parts rather than copying them:

* **Window.** :meth:`ReplayMarket.random_window` (the replay campaign's choice: a start
  uniform in the history, the horizon after it), with a seed drawn from the environment's
  ``np_random``, so ``reset(seed=s)`` replays the same window.
* **Path.** The price at the start of every simulation step is the pool's after the last swap
  at or before that moment; a step's volume is the stable token traded by its swaps (at $1).
* **Fees.** Per decision interval, :meth:`ReplayMarket.fees` (the per-swap fee math of
  :mod:`clmmd.env.replay_fees`, numpy path by default) for the open range with the episode's
  liquidity, a passive provider on top of the history, valued at the interval's end price.
* **Inputs** (the observation's fixed fields) are what could be known at the window's start:
  daily volatility and volume from the history's last 24 h before it (fewer hours at the very
  start of the history; the mock's defaults with none), the pool's active liquidity at the
  start (valued over the mock's ±10 % band), gas at the mock's default (the history has none)
  and ETH at the pool's own price when its volatile token is (W)ETH. Flow is unknown.

Nothing of an episode reads a swap after "now": the path and the fees of an interval come from
the swaps up to its end, revealed one decision at a time by the environment.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from clmmd.env.base import MarketInputs, PoolSpec, pool_by_address
from clmmd.env.history import HistoryError
from clmmd.env.mock import ACTIVE_LIQUIDITY_BAND, resolve_market
from clmmd.env.pricing import position_value_usd
from clmmd.env.replay import ReplayMarket, ReplayMethod, ReplayWindow
from clmmd.env.replay_fees import LpPosition
from clmmd.env.uniswap_math import amounts_for_liquidity_f
from clmmd.scheduler.mock_source import gas_regime_of
from clmmd.service.rl.market import EpisodeMarket

#: How far back the episode's inputs look (seconds): a day, as the intel snapshot's figures.
LOOKBACK_S = 86_400
_DAY_S = 86_400.0


@dataclass(frozen=True)
class ReplayStepFees:
    """The replay's fees for a range held over decision intervals of one episode's window."""

    market: ReplayMarket
    rows: NDArray[np.int64]  # the last swap at or before each step's start (and the end)
    times: NDArray[np.int64]  # each step's start (and the end), Unix seconds
    method: ReplayMethod

    def __call__(
        self, tick_lower: int, tick_upper: int, liquidity: float, first_step: int, last_step: int
    ) -> float:
        """USD fees (at the price at ``last_step``) of ``liquidity`` over ``[tick_lower,
        tick_upper)`` for the swaps of steps ``first_step … last_step - 1``."""
        start, stop = int(self.rows[first_step]), int(self.rows[last_step])
        units = int(liquidity)
        if stop == start or units < 1:
            return 0.0
        window = ReplayWindow(start, stop, int(self.times[first_step]), int(self.times[last_step]))
        fees = self.market.fees(LpPosition(tick_lower, tick_upper, units), window, self.method)
        return position_value_usd(
            self.market.pool, fees.fee0, fees.fee1, self.market.price_usd(stop)
        )


class ReplayMarketSource:
    """Episodes drawn from a replayed history (see the module docstring)."""

    def __init__(
        self,
        market: ReplayMarket,
        *,
        step_minutes: float = 5.0,
        method: ReplayMethod = "vector",
    ) -> None:
        self.market = market
        self.step_minutes = step_minutes
        self.method: ReplayMethod = method
        self.window: ReplayWindow | None = None  # the last episode's
        pool = market.pool
        history = market.history
        stable = history.amount0 if pool.stable_token == 0 else history.amount1
        scale = 10.0 ** -(pool.decimals0 if pool.stable_token == 0 else pool.decimals1)
        # Cumulative stable-token volume: a step's volume is a difference of two entries.
        volume = np.fromiter((abs(v) * scale for v in stable), np.float64, len(history))
        volume[0] = 0.0  # row 0 opens the history: nothing before it to replay
        self._cum_volume = np.cumsum(volume)
        # Every row's USD price once (a reset reads a few hundred of them).
        self._price_usd = np.fromiter(map(market.price_usd, range(len(history))), np.float64)

    def check_horizon(self, horizon_hours: float) -> None:
        """``HistoryError`` (a ``ValueError``) unless one episode fits in the history."""
        covered = self.market.last_time - self.market.first_time
        if covered < round(horizon_hours * 3600):
            raise HistoryError(
                f"horizon_hours={horizon_hours:g}: the history covers {covered / 3600:.1f} h, "
                "less than one episode"
            )

    def draw(self, rng: np.random.Generator, pool: PoolSpec, horizon_hours: float) -> EpisodeMarket:
        """The next episode: a window of the history, its seed drawn from ``rng``."""
        market = self.market
        if pool.address.lower() != market.pool.address.lower():
            raise ValueError(f"pool={pool.address}: the history is {market.pool.address}'s")
        path_seed = int(rng.integers(0, 2**63 - 1))
        window = market.random_window(path_seed, horizon_hours)
        self.window = window
        step_s = self.step_minutes * 60.0
        steps = round((window.end_time - window.start_time) / step_s)
        times = window.start_time + np.round(np.arange(steps + 1) * step_s).astype(np.int64)
        times[-1] = window.end_time
        rows = np.searchsorted(market.history.block_time, times, side="right").astype(np.int64) - 1
        prices = self._price_usd[rows]
        cum = self._cum_volume
        volumes = cum[rows[1:]] - cum[rows[:-1]]
        return EpisodeMarket(
            inputs=(inputs := resolve_market(pool, self._inputs(window, rows[0]))),
            gas_regime=gas_regime_of(inputs.gas_price_gwei),
            toxic_share=None,
            path_seed=path_seed,
            prices_usd=prices,
            volumes_usd=volumes,
            step_minutes=self.step_minutes,
            step_fees=ReplayStepFees(market, rows, times, self.method),
        )

    def _inputs(self, window: ReplayWindow, start: int) -> MarketInputs:
        """What the intel would say at the window's start, from the swaps before it."""
        market = self.market
        history = market.history
        price = market.price_usd(start)
        since = max(market.first_time, window.start_time - LOOKBACK_S)
        span_s = window.start_time - since
        volatility = volume = None
        if span_s > 0:
            first = max(0, history.index_at(since))
            volume = float(self._cum_volume[start] - self._cum_volume[first]) * _DAY_S / span_s
            step_s = self.step_minutes * 60.0
            grid = np.arange(since, window.start_time + 1, step_s)
            rows = np.searchsorted(history.block_time, grid, side="right") - 1
            rows = rows[rows >= 0]
            if len(rows) > 2:
                log_prices = np.log(self._price_usd[rows])
                volatility = float(np.std(np.diff(log_prices))) * math.sqrt(_DAY_S / step_s)
        sqrt_price = history.sqrt_price_x96[start] / 2.0**96
        raw = sqrt_price * sqrt_price
        band = ACTIVE_LIQUIDITY_BAND
        amount0, amount1 = amounts_for_liquidity_f(
            raw, raw * (1 - band), raw * (1 + band), float(history.liquidity[start])
        )
        return MarketInputs(
            price_usd=price,
            volatility_daily=volatility,
            volume_usd_per_day=volume,
            active_liquidity_usd=position_value_usd(market.pool, amount0, amount1, price),
            gas_price_gwei=None,
            eth_price_usd=market.eth_price_usd(start, math.nan),
        )


def load_replay_source(
    path: str | os.PathLike[str],
    pool: str | None,
    *,
    step_minutes: float,
    method: ReplayMethod = "vector",
) -> ReplayMarketSource:
    """Read and prepare the history file at ``path`` (Parquet or CSV, as ``clmmd backtest
    --history`` takes). Its pool is the one the file names (``pool``, an address, must agree),
    else the known pool ``pool``; a ``ValueError`` naming the file or the field otherwise (a
    :class:`HistoryError` for the file's content: a missing column, a bad row)."""
    from clmmd.env.history_io import read_history  # pyarrow only where a history is read

    history, described = read_history(Path(path))
    if described is None:
        if pool is None:
            raise ValueError(f"history={str(path)!r} does not name its pool: pass pool=ADDRESS")
        try:
            described = pool_by_address(pool)
        except KeyError as exc:
            raise ValueError(f"pool={pool!r}: {exc.args[0]}") from None
    elif pool is not None and pool.lower() != described.address.lower():
        raise ValueError(
            f"pool={pool!r}: history={str(path)!r} is the history of {described.address}"
        )
    return ReplayMarketSource(
        ReplayMarket(history, described), step_minutes=step_minutes, method=method
    )
