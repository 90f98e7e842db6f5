"""Gymnasium environments of one Uniswap V3 LP position with rebalancing.

``clmmd/UniswapV3LP-v0`` (:class:`UniswapV3LPEnv`): before every decision interval (default:
hourly over a 24 h horizon) the action is ``Discrete(1 + len(widths))``: ``0`` keeps what is
open (before the first open: stay out), ``i >= 1`` closes the open range, if any, and opens one
``widths[i - 1]`` ticks wide centred on the current price, as the agent's bandit arms are
(default 200 … 4000 ticks ≈ ±1 … ±20 %).

``clmmd/UniswapV3LPContinuous-v0`` (:class:`UniswapV3LPContinuousEnv`): the action is
``Box(-1, 1, (3,))``: ``a[0] > 0`` (re)opens a range from ``price × (1 − lower)`` to ``price ×
(1 + upper)``, with ``lower`` and ``upper`` read from ``a[1]`` and ``a[2]`` on a log scale
from 0.25 % (−1) to 50 % (+1); ``a[0] <= 0`` keeps what is open.

Observation: :mod:`clmmd.service.rl.observation` (20 ``float32`` fields). Reward: the
project's reward of what the interval did, in percent of the deployed size
(:mod:`clmmd.service.rl.episode`); the rewards of an episode add up to the reward of the whole
episode. An episode ends (``terminated``) at the horizon, where the open range is closed.
Every episode draws its market from ``self.np_random`` only, so ``reset(seed=s)`` replays the
same episode (Gymnasium's seeding rules).

Keyword arguments of ``gymnasium.make`` (all optional): ``pool`` (address of a known pool),
``size_usd`` (before the regime's risk scalar), ``horizon_hours``, ``decision_minutes``,
``step_minutes``, ``market`` (``"synthetic"``, the default: inputs drawn per episode; a
mapping of :class:`clmmd.env.base.MarketInputs` fields fixing every episode's inputs;
``"replay"``: seeded windows of the Swap history in ``history``, see
:mod:`clmmd.service.rl.replay_market`), ``history`` (a Parquet or CSV file, as ``clmmd
backtest --history`` reads; its pool is the one the file names, else ``pool``),
``toxic_share`` (with a ``market`` mapping),
``reward_weights`` (``pnl``, ``fees``, ``gas``, ``range``); the discrete environment also takes
``widths`` (tick widths of its actions 1…).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from clmmd.agent.policy import DEFAULT_WIDTHS
from clmmd.agent.proposer import centred_range
from clmmd.agent.regime import MarketView, Regime, classify
from clmmd.agent.reward import RewardWeights
from clmmd.agent.risk import risk_scalar
from clmmd.env.base import DEFAULT_POOL_ADDRESS, MarketInputs, PoolSpec, pool_by_address
from clmmd.env.mock import GAS_UNITS_PER_EPISODE, gas_cost_usd
from clmmd.env.pricepath import step_count
from clmmd.env.pricing import usd_range_to_ticks
from clmmd.service.rl import observation as obs
from clmmd.service.rl.episode import LpEpisode
from clmmd.service.rl.market import EpisodeMarket, MarketSource, SyntheticMarket
from clmmd.service.rl.replay_market import load_replay_source

ActT = TypeVar("ActT")
Observation = NDArray[np.float32]

#: The continuous action's offsets run log-uniformly between these fractions of the price.
MIN_OFFSET = 0.0025
MAX_OFFSET = 0.5


def _fixed_inputs(market: Mapping[str, float] | str | None) -> MarketInputs | None:
    """The synthetic market's fixed inputs (``None``: drawn per episode)."""
    if market is None or market == "synthetic":
        return None
    if isinstance(market, str) or not isinstance(market, Mapping):
        raise ValueError(
            f"market={market!r}: unknown market (known: 'synthetic', 'replay', or a mapping "
            "of MarketInputs fields for a fixed synthetic market)"
        )
    fields = MarketInputs.__dataclass_fields__
    unknown = sorted(set(market) - set(fields))
    if unknown:
        raise ValueError(
            f"market: unknown field(s) {', '.join(map(repr, unknown))} (MarketInputs fields: "
            f"{', '.join(fields)})"
        )
    return MarketInputs(**market)


class _LpEnv(gym.Env[Observation, ActT], Generic[ActT]):
    """What both action spaces share: market, episode accounting, observation, info."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        *,
        pool: str | None = None,
        size_usd: float = 10_000.0,
        horizon_hours: float = 24.0,
        decision_minutes: float = 60.0,
        step_minutes: float = 5.0,
        market: Mapping[str, float] | str | None = None,
        history: str | os.PathLike[str] | None = None,
        toxic_share: float | None = None,
        reward_weights: Mapping[str, float] | None = None,
        market_source: MarketSource | None = None,
    ) -> None:
        if not (math.isfinite(size_usd) and size_usd > 0):
            raise ValueError(f"size_usd={size_usd!r} must be finite and > 0")
        ratio = decision_minutes / step_minutes
        if not (ratio >= 1 and abs(ratio - round(ratio)) < 1e-9):
            raise ValueError(
                f"decision_minutes={decision_minutes!r} must be a whole multiple of "
                f"step_minutes={step_minutes!r}"
            )
        steps = step_count(horizon_hours, step_minutes)
        self.steps_per_decision = round(ratio)
        if steps % self.steps_per_decision:
            raise ValueError(
                f"horizon_hours={horizon_hours!r} is not a whole number of "
                f"{decision_minutes:g}-minute decisions"
            )
        self.size_usd = float(size_usd)
        self.horizon_hours = float(horizon_hours)
        self.decisions = steps // self.steps_per_decision
        self.weights = RewardWeights(**(reward_weights or {}))
        self.pool: PoolSpec
        self.source: MarketSource
        if market_source is not None:
            self.pool, self.source = pool_by_address(pool or DEFAULT_POOL_ADDRESS), market_source
        elif market == "replay":
            if history is None:
                raise ValueError(
                    "market='replay' needs history=PATH (a Parquet or CSV Swap history, as "
                    "`clmmd backtest --history` reads)"
                )
            if toxic_share is not None:
                raise ValueError(
                    f"toxic_share={toxic_share!r} is an input of the synthetic market only "
                    "(a replayed history's flow is unknown)"
                )
            replay = load_replay_source(
                history,
                pool,
                step_minutes=step_minutes,
            )
            replay.check_horizon(self.horizon_hours)
            self.pool, self.source = replay.market.pool, replay
        else:
            if history is not None:
                raise ValueError(
                    f"history={str(history)!r} is read by market='replay' only (market={market!r})"
                )
            fixed = _fixed_inputs(market)
            self.pool = pool_by_address(pool or DEFAULT_POOL_ADDRESS)
            self.source = SyntheticMarket(fixed, step_minutes=step_minutes, toxic_share=toxic_share)
        self.observation_space = gym.spaces.Box(obs.LOW, obs.HIGH, dtype=np.float32)
        self.episode: LpEpisode | None = None
        self.regime: Regime | None = None
        self._static: NDArray[np.float32] = np.zeros(obs.STATIC_SIZE, dtype=np.float32)

    # -- Gymnasium API -----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        market = self.source.draw(self.np_random, self.pool, self.horizon_hours)
        self.start_episode(market)
        return self.observe(), self._info()

    def step(self, action: ActT) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        episode = self.episode
        if episode is None:
            raise RuntimeError("call reset() before step()")
        result = episode.step(self.ticks_for(action, episode.price_usd))
        return self.observe(), result.reward, result.done, False, self._info()

    # -- the shared pieces -------------------------------------------------------------------

    def start_episode(self, market: EpisodeMarket) -> LpEpisode:
        """Begin an episode on ``market`` (what :meth:`reset` does after drawing it)."""
        inputs = market.inputs
        self.regime = classify(
            MarketView(
                price_usd=inputs.price_usd,
                gas_regime=market.gas_regime,
                volatility_daily=inputs.volatility_daily,
                toxic_share=market.toxic_share,
            )
        )
        scalar = risk_scalar(self.regime)
        size = self.size_usd * scalar
        self.episode = LpEpisode(
            self.pool,
            market,
            size_usd=size,
            steps_per_decision=self.steps_per_decision,
            weights=self.weights,
        )
        self._static = obs.clip_static(
            obs.static_features(
                volatility_daily=inputs.volatility_daily,
                volume_usd_per_day=inputs.volume_usd_per_day,
                active_liquidity_usd=inputs.active_liquidity_usd,
                gas_cost_usd=gas_cost_usd(
                    inputs.gas_price_gwei, inputs.eth_price_usd, GAS_UNITS_PER_EPISODE
                ),
                size_usd_applied=size,
                fee_pips=self.pool.fee_pips,
                regime=self.regime,
                risk_scalar=scalar,
            )
        )
        return self.episode

    def ticks_for(self, action: ActT, price_usd: float) -> tuple[int, int] | None:
        """The range ``action`` opens at ``price_usd``, or ``None`` to keep what is open."""
        raise NotImplementedError

    def observe(self) -> Observation:
        """The observation now (what reset and step return)."""
        e = self.episode
        assert e is not None
        elapsed = e.elapsed_steps
        return obs.encode(
            self._static,
            price_usd=e.price_usd,
            start_price_usd=e.start_price_usd,
            range_usd=e.range_usd,
            time_in_range=e.in_range_steps / elapsed if elapsed else 0.0,
            fees_pct=100.0 * e.fees_usd / e.size_usd,
            progress=e.t / e.decisions,
        )

    def _info(self) -> dict[str, Any]:
        # The same keys at reset and at every step (Minari stores infos step by step).
        e = self.episode
        assert e is not None
        return {
            "pnl_usd": e.pnl_usd,
            "fees_usd": e.fees_usd,
            "gas_usd": e.gas_usd,
            "value_usd": e.value_usd,
            "time_in_range_pct": e.time_in_range_pct,
            "rebalances": e.rebalances,
        }


class UniswapV3LPEnv(_LpEnv[np.int64]):
    """``clmmd/UniswapV3LP-v0``: keep (0) or (re)open at one of ``widths`` ticks (1…)."""

    def __init__(self, *, widths: Sequence[int] = DEFAULT_WIDTHS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths={list(widths)!r} must be positive tick counts")
        self.widths = tuple(int(w) for w in widths)
        self.action_space = gym.spaces.Discrete(1 + len(self.widths))

    def ticks_for(self, action: np.int64, price_usd: float) -> tuple[int, int] | None:
        index = int(action)
        if index == 0:
            return None
        return centred_range(self.pool, price_usd, self.widths[index - 1])

    def action_for_width(self, width_ticks: int) -> int:
        """The action that opens ``width_ticks`` (``ValueError`` for a width it does not have)."""
        return 1 + self.widths.index(width_ticks)


def offset_fraction(u: float) -> float:
    """A continuous action component in [−1, 1] as a price offset fraction (log scale)."""
    clipped = min(1.0, max(-1.0, u))
    return float(MIN_OFFSET * (MAX_OFFSET / MIN_OFFSET) ** ((clipped + 1.0) / 2.0))


def offset_action(fraction: float) -> float:
    """Inverse of :func:`offset_fraction`: the component that asks for ``fraction``."""
    return 2.0 * math.log(fraction / MIN_OFFSET) / math.log(MAX_OFFSET / MIN_OFFSET) - 1.0


class UniswapV3LPContinuousEnv(_LpEnv[NDArray[np.float32]]):
    """``clmmd/UniswapV3LPContinuous-v0``: (rebalance?, lower offset, upper offset)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)

    def ticks_for(self, action: NDArray[np.float32], price_usd: float) -> tuple[int, int] | None:
        if not float(action[0]) > 0.0:
            return None
        lower = offset_fraction(float(action[1]))
        upper = offset_fraction(float(action[2]))
        return usd_range_to_ticks(self.pool, price_usd * (1.0 - lower), price_usd * (1.0 + upper))
