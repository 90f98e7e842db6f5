""":class:`env.base.ClmmEnv` on a replayed market: episodes are windows of a pool's real history.

Same interface and outcome as :class:`env.mock.MockClmmEnv`; only the market differs:

* **Window.** The episode seed picks the start uniformly in the history (seeded, so the same
  request replays the same window); the horizon is the request's.
* **Range.** The agent proposes ticks around the price it saw (``request.market.price_usd``),
  which is today's, not the window's. The range is moved by whole tick spacings so that it sits
  around the window's opening price the way it sat around the proposal's price: its width and
  its offset from the price are the agent's choice. Requested and applied ticks are both in
  ``simulation``.
* **Position.** ``size_usd × risk_scalar`` at the opening price buys liquidity ``L``; the
  position is a passive provider on top of the history (no price impact).
* **Fees.** Per swap, as the pool computes them (:mod:`env.replay_fees`), with the numpy path
  (``method="vector"``, agrees with the exact one to ~1e-12) unless told ``"exact"``.
* **Gas.** As the mock: one mint, one burn, one collect at the market's gas price; ETH at the
  pool's own price when its volatile token is WETH.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, Literal

import structlog

from clmmd.env.base import EnvHealth, ExecutionOutcome, ExecutionRequest, PoolSpec
from clmmd.env.mock import GAS_UNITS_PER_EPISODE, gas_cost_usd, resolve_market, validate_request
from clmmd.env.pricing import usd_price_to_tick
from clmmd.env.replay import ReplayMarket, ReplayMethod
from clmmd.env.replay_fees import LpPosition
from clmmd.env.uniswap_math import usable_tick_bounds

log = structlog.get_logger(__name__)


def anchored_ticks(
    pool: PoolSpec, tick_lower: int, tick_upper: int, proposal_tick: int, open_tick: int
) -> tuple[int, int]:
    """Move ``[tick_lower, tick_upper]`` by whole spacings from ``proposal_tick`` to
    ``open_tick`` (clamped so it stays within the usable ticks)."""
    spacing = pool.tick_spacing
    shift = round((open_tick - proposal_tick) / spacing) * spacing
    low, high = usable_tick_bounds(spacing)
    shift = max(low - tick_lower, min(high - tick_upper, shift))
    return tick_lower + shift, tick_upper + shift


class ReplayClmmEnv:
    """Mock execution on a replayed history. ``loader`` builds the market on first use (it
    reads files: it runs in a worker thread, never on the event loop)."""

    name: Literal["mock", "real"] = "mock"

    def __init__(
        self,
        loader: Callable[[], ReplayMarket] | ReplayMarket,
        method: ReplayMethod = "vector",
    ) -> None:
        self._market = loader if isinstance(loader, ReplayMarket) else None
        self._loader = None if isinstance(loader, ReplayMarket) else loader
        self._method: ReplayMethod = method
        self._loading = asyncio.Lock()

    async def health(self) -> EnvHealth | None:
        """No Gateway in mock execution: nothing to report."""
        return None

    def market(self) -> ReplayMarket:
        """The market, loading it on first use."""
        if self._market is None:
            assert self._loader is not None
            self._market = self._loader()
        return self._market

    def run(self, request: ExecutionRequest) -> ExecutionOutcome:
        """Replay ``request`` (synchronous, pure once the market is loaded)."""
        validate_request(request)
        market = self.market()
        if request.pool.address.lower() != market.pool.address.lower():
            raise ValueError(
                f"pool {request.pool.address} has no replay history here (the history is "
                f"{market.pool.address}'s)"
            )
        window = market.random_window(request.seed, request.horizon_hours)
        _, open_tick = market.state(window.start)
        inputs = resolve_market(request.pool, request.market)
        lower, upper = anchored_ticks(
            request.pool,
            request.tick_lower,
            request.tick_upper,
            usd_price_to_tick(request.pool, inputs.price_usd),
            open_tick,
        )
        size = request.size_usd * request.risk_scalar
        liquidity = market.liquidity_for_size(window, lower, upper, size)
        gas = gas_cost_usd(
            inputs.gas_price_gwei, market.eth_price_usd(window.start, inputs.eth_price_usd)
        )
        result = market.evaluate(
            LpPosition(lower, upper, liquidity), window, gas_cost_usd=gas, method=self._method
        )
        summary = result.to_json()
        simulation: dict[str, Any] = {
            "source": "mock",
            "market": "replay",
            "seed": request.seed,
            "horizon_hours": request.horizon_hours,
            "window_start": summary["from"],
            "window_end": summary["to"],
            "swaps": window.swaps,
            "swaps_in_range": result.fees.swaps_in_range,
            "swaps_modelled": result.fees.swaps_modelled,
            "fee_method": result.fees.method,
            "start_price_usd": result.start_price_usd,
            "end_price_usd": result.end_price_usd,
            "tick_lower_requested": request.tick_lower,
            "tick_upper_requested": request.tick_upper,
            "tick_lower": lower,
            "tick_upper": upper,
            "liquidity": float(liquidity),
            "token0": request.pool.token0,
            "token1": request.pool.token1,
            "fees_token0": result.fees.fee0 / 10.0**request.pool.decimals0,
            "fees_token1": result.fees.fee1 / 10.0**request.pool.decimals1,
            "initial_value_usd": result.value_start_usd,
            "lp_value_end_usd": result.value_end_usd,
            "hold_value_end_usd": result.hold_value_end_usd,
            "gas_units": GAS_UNITS_PER_EPISODE,
            "inputs": {
                "gas_price_gwei": inputs.gas_price_gwei,
                "proposal_price_usd": inputs.price_usd,
            },
            "defaults_used": list(inputs.defaults_used),
        }
        if not all(math.isfinite(v) for v in (result.pnl_usd, result.fees_usd, result.il_usd)):
            raise ValueError(f"replay produced a non-finite figure for {request.episode_id}")
        log.debug(
            "replay_execution_done",
            episode_id=request.episode_id,
            window_start=simulation["window_start"],
            swaps=window.swaps,
            pnl_usd=result.pnl_usd,
        )
        return ExecutionOutcome(
            pnl_usd=result.pnl_usd,
            fees_usd=result.fees_usd,
            gas_cost_usd=result.gas_cost_usd,
            il_usd=result.il_usd,
            hodl_return_usd=result.hodl_return_usd,
            time_in_range_pct=result.time_in_range_pct,
            risk_scalar_applied=request.risk_scalar,
            size_usd_applied=size,
            simulation=simulation,
        )

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        """Load the market in a worker thread the first time; replaying a window is CPU-light
        (the numpy path takes well under a millisecond for a day of a busy pool)."""
        if self._market is None:
            async with self._loading:  # concurrent episodes load it once
                if self._market is None:
                    await asyncio.to_thread(self.market)
        return self.run(request)
