"""One LP episode with rebalancing: the pure accounting under the Gymnasium environment.

The episode's horizon is cut into ``decisions`` intervals of ``steps_per_decision`` simulation
steps. Before each interval the policy may keep what it has or (re)open a range centred on the
current price; the interval is then simulated with the mock simulator's model
(:mod:`clmmd.env.mock`), step by step:

* **Fees.** A step earns ``fee × volume × L / (L_active + L)`` when the price at its start is
  inside ``[lower, upper)``; ``L_active`` is the pool's in-range liquidity, fixed at the
  episode start as in the mock. A market with its own fees (``EpisodeMarket.step_fees``: a
  replayed history's, swap by swap) gives the interval's fees instead.
* **Gas.** Opening a range costs a mint, closing one a burn and a collect
  (:data:`clmmd.env.mock.GAS_UNITS_MINT` …) at the episode's gas and ETH price. The position
  still open at the end of the horizon is closed then.
* **Rebalancing** closes the position at the current price and puts its whole value into the
  new range. The token mix differs between ranges, so the part that must change sides is
  swapped through the pool and pays the pool fee on it (a loss of position value). The first
  deposit arrives in the right mix, as in the mock (no swap).
* **Before the first open** the capital is idle: no fees, no price exposure, and the steps count
  as out of range.

The reward of an interval is the project's reward (:mod:`clmmd.agent.reward`, percent of the
deployed size) of what happened in it, so an episode's rewards add up to the reward of the
whole episode: ``pnl`` is the change of the position's value, ``fees``, ``gas_penalty``, and
``range_penalty`` = −weight × out-of-range steps ÷ all steps. An episode that opens one range
at the first decision and keeps it scores what ``MockClmmEnv`` gives that position (a test
checks it against the mock).
"""

from __future__ import annotations

from dataclasses import dataclass

from clmmd.agent.reward import RewardWeights
from clmmd.env.base import PoolSpec
from clmmd.env.mock import (
    ACTIVE_LIQUIDITY_BAND,
    GAS_UNITS_BURN,
    GAS_UNITS_COLLECT,
    GAS_UNITS_MINT,
    gas_cost_usd,
)
from clmmd.env.pricing import (
    liquidity_for_value_usd,
    raw_price_from_usd,
    raw_prices_from_usd,
    ticks_to_usd_range,
)
from clmmd.env.uniswap_math import amounts_for_liquidity_f, tick_to_price
from clmmd.service.rl.market import EpisodeMarket


@dataclass(frozen=True)
class StepResult:
    """What one decision interval did (USD unless named)."""

    reward: float
    fees_usd: float
    gas_usd: float
    value_change_usd: float
    in_range_steps: int
    done: bool


class LpEpisode:
    """The position's state over one episode; :meth:`step` applies a decision and simulates."""

    def __init__(
        self,
        pool: PoolSpec,
        market: EpisodeMarket,
        *,
        size_usd: float,
        steps_per_decision: int,
        weights: RewardWeights,
    ) -> None:
        if steps_per_decision < 1 or market.steps % steps_per_decision:
            raise ValueError(
                f"steps_per_decision={steps_per_decision} must divide the market's "
                f"{market.steps} steps"
            )
        self.pool = pool
        self.market = market
        self.size_usd = size_usd
        self.k = steps_per_decision
        self.decisions = market.steps // steps_per_decision
        self.weights = weights
        inputs = market.inputs
        # Plain lists: an interval is a dozen steps, where a Python loop beats numpy's per-call
        # overhead several times over (bench/gym_speed.py).
        self._prices: list[float] = market.prices_usd.tolist()
        self._raw: list[float] = raw_prices_from_usd(pool, market.prices_usd).tolist()
        self._volumes: list[float] = market.volumes_usd.tolist()
        self._fee = pool.fee_fraction
        self._step_fees = market.step_fees
        self._stable_is_token0 = pool.stable_token == 0
        self._scale0 = 10.0**-pool.decimals0
        self._scale1 = 10.0**-pool.decimals1
        start = float(market.prices_usd[0])
        start_raw = raw_price_from_usd(pool, start)
        self._active_liquidity = liquidity_for_value_usd(
            pool,
            inputs.active_liquidity_usd,
            start,
            start_raw * (1 - ACTIVE_LIQUIDITY_BAND),
            start_raw * (1 + ACTIVE_LIQUIDITY_BAND),
        )[0]
        self._gas_open = gas_cost_usd(inputs.gas_price_gwei, inputs.eth_price_usd, GAS_UNITS_MINT)
        self._gas_close = gas_cost_usd(
            inputs.gas_price_gwei, inputs.eth_price_usd, GAS_UNITS_BURN + GAS_UNITS_COLLECT
        )
        self._pct = 100.0 / size_usd
        # State.
        self.t = 0
        self.ticks: tuple[int, int] | None = None
        self._range_usd: tuple[float, float] | None = None
        self._pa = self._pb = 0.0
        self._liquidity = 0.0
        self.value_usd = size_usd
        self.fees_usd = 0.0
        self.gas_usd = 0.0
        self.swap_usd = 0.0
        self.in_range_steps = 0
        self.rebalances = 0

    # -- what the observation may read (the present and the past only) --------------------

    @property
    def price_usd(self) -> float:
        """The price now: at the start of the next interval (the end of the path when done)."""
        return self._prices[self.t * self.k]

    @property
    def start_price_usd(self) -> float:
        return self._prices[0]

    @property
    def elapsed_steps(self) -> int:
        return self.t * self.k

    @property
    def done(self) -> bool:
        return self.t >= self.decisions

    @property
    def range_usd(self) -> tuple[float, float] | None:
        """The open range's USD bounds, low first (``None`` before the first open)."""
        return self._range_usd

    # -- the dynamics ------------------------------------------------------------------------

    def _value(self, raw: float, usd: float) -> float:
        """USD value of the open position at raw price ``raw`` (volatile token at ``usd``)."""
        amount0, amount1 = amounts_for_liquidity_f(raw, self._pa, self._pb, self._liquidity)
        if self._stable_is_token0:
            return amount0 * self._scale0 + amount1 * self._scale1 * usd
        return amount0 * self._scale0 * usd + amount1 * self._scale1

    def _volatile_share(self, raw: float, usd: float, pa: float, pb: float) -> float:
        """Share of a position's value held in the volatile token at this price."""
        amount0, amount1 = amounts_for_liquidity_f(raw, pa, pb, 1.0)
        if self._stable_is_token0:
            stable, volatile = amount0 * self._scale0, amount1 * self._scale1 * usd
        else:
            volatile, stable = amount0 * self._scale0 * usd, amount1 * self._scale1
        return volatile / (stable + volatile)

    def _open(self, ticks: tuple[int, int], raw: float, usd: float) -> tuple[float, float]:
        """(Re)open at ``ticks``; returns (gas, swap cost) of doing so."""
        lower, upper = ticks
        if lower >= upper:
            raise ValueError(f"tick_lower={lower} must be below tick_upper={upper}")
        pa, pb = tick_to_price(lower), tick_to_price(upper)
        gas = self._gas_open
        swap = 0.0
        if self.ticks is not None:
            gas += self._gas_close
            value = self._value(raw, usd)
            old_share = self._volatile_share(raw, usd, self._pa, self._pb)
            new_share = self._volatile_share(raw, usd, pa, pb)
            swap = self._fee * abs(new_share - old_share) * value
            self.value_usd = value - swap
            self.rebalances += 1
        self.ticks = ticks
        self._range_usd = ticks_to_usd_range(self.pool, lower, upper)
        self._pa, self._pb = pa, pb
        self._liquidity = liquidity_for_value_usd(self.pool, self.value_usd, usd, pa, pb)[0]
        return gas, swap

    def step(self, ticks: tuple[int, int] | None) -> StepResult:
        """Keep the position (``None``) or (re)open at ``ticks``, then simulate one interval."""
        if self.done:
            raise RuntimeError("the episode is over: reset before stepping again")
        i0 = self.t * self.k
        i1 = i0 + self.k
        raw0 = self._raw[i0]
        usd0 = self._prices[i0]
        gas = swap = 0.0
        value_before = self.value_usd
        if ticks is not None:
            gas, swap = self._open(ticks, raw0, usd0)
        fees = 0.0
        in_range = 0
        if self.ticks is not None:
            pa, pb = self._pa, self._pb
            volume = 0.0
            for raw, step_volume in zip(self._raw[i0:i1], self._volumes[i0:i1], strict=True):
                if pa <= raw < pb:
                    in_range += 1
                    volume += step_volume
            if self._step_fees is not None:
                fees = self._step_fees(*self.ticks, self._liquidity, i0, i1)
            elif in_range:
                share = self._liquidity / (self._active_liquidity + self._liquidity)
                fees = self._fee * share * volume
            self.value_usd = self._value(self._raw[i1], self._prices[i1])
        self.t += 1
        done = self.done
        if done and self.ticks is not None:
            gas += self._gas_close
        self.fees_usd += fees
        self.gas_usd += gas
        self.swap_usd += swap
        self.in_range_steps += in_range
        change = self.value_usd - value_before
        w = self.weights
        reward = (w.pnl * change + w.fees * fees - w.gas * gas) * self._pct - w.range * (
            self.k - in_range
        ) / self.market.steps
        return StepResult(reward, fees, gas, change, in_range, done)

    @property
    def pnl_usd(self) -> float:
        """Position value change + fees − gas so far (swap costs are in the value change)."""
        return self.value_usd - self.size_usd + self.fees_usd - self.gas_usd

    @property
    def time_in_range_pct(self) -> float:
        """Share of the steps simulated so far spent in range, in percent."""
        elapsed = self.elapsed_steps
        return 100.0 * self.in_range_steps / elapsed if elapsed else 0.0
