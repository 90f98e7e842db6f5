"""The market an LP episode of the Gymnasium environment runs through.

An :class:`EpisodeMarket` is everything the episode needs from the market: the episode's
static inputs (what the intel snapshot would say at the start: volatility, volume, pool
liquidity, gas) and the path (USD price at the start of every simulation step and at the end,
traded volume per step). The environment reveals the path one decision at a time; nothing
else may read it ahead (``tests/service/rl/test_lp_env.py`` checks the observation never
depends on the path's future).

:class:`SyntheticMarket` is clmmd's mock market: the same seeded GBM price path and volume
series as :class:`clmmd.env.mock.MockClmmEnv` (``env.pricepath``), so an episode that opens
one range and holds it scores exactly what the mock simulator gives that position. Without a
fixed ``inputs`` it draws the inputs of every episode from :data:`SAMPLING_RANGES`, so a
policy sees every regime (low/mid/high volatility, low/normal/high gas) while it trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from clmmd.env.base import MarketInputs, PoolSpec
from clmmd.env.mock import ResolvedMarket, resolve_market
from clmmd.env.pricepath import DEFAULT_VOLUME_NOISE, price_path, volume_series
from clmmd.scheduler.mock_source import gas_regime_of

#: How :class:`SyntheticMarket` draws an episode's inputs when none are fixed (uniform unless
#: named otherwise). Volumes and liquidity are per fee tier: the 0.05 % pools trade more.
SAMPLING_RANGES: dict[str, tuple[float, float]] = {
    "price_factor": (0.97, 1.03),  # × the pool's reference price
    "volatility_daily": (0.01, 0.08),  # spans the low (< 2 %), mid and high (>= 5 %) buckets
    "volume_factor": (0.6, 1.4),  # × 150 M USD/day (fee <= 0.05 %) or 25 M USD/day
    "liquidity_to_volume": (0.18, 0.84),  # active liquidity ÷ daily volume
    "gas_log_gwei": (2.6, 0.6),  # log-normal (mu, sigma) + 0.5..3 gwei tip, as the mock intel
    "eth_factor": (0.97, 1.03),  # × 3000 USD
    "toxic_share": (0.02, 0.35),  # toxic flow above 0.25 is the "toxic" regime
}
_VOLUME_BASE_LOW_FEE = 150e6
_VOLUME_BASE_HIGH_FEE = 25e6
_ETH_REFERENCE_USD = 3000.0


class StepFees(Protocol):
    """USD fees that ``liquidity`` over ``[tick_lower, tick_upper)`` earns in simulation steps
    ``first_step … last_step - 1`` of an episode."""

    def __call__(
        self, tick_lower: int, tick_upper: int, liquidity: float, first_step: int, last_step: int
    ) -> float: ...


@dataclass(frozen=True)
class EpisodeMarket:
    """One episode's market: static inputs known at the start and the path revealed over time.

    ``prices_usd`` has one more entry than ``volumes_usd``: the price at the start of every
    simulation step and the price at the end of the last one.
    """

    inputs: ResolvedMarket
    gas_regime: str | None
    toxic_share: float | None
    path_seed: int
    prices_usd: NDArray[np.float64]
    volumes_usd: NDArray[np.float64]
    step_minutes: float
    #: The market's own fees of a range over an interval (a replayed history's per-swap fees);
    #: ``None``: the mock's model from the volumes.
    step_fees: StepFees | None = None

    @property
    def steps(self) -> int:
        return len(self.volumes_usd)


class MarketSource(Protocol):
    """Where the environment gets each episode's market: :class:`SyntheticMarket`, or a
    replayed history (:class:`clmmd.service.rl.replay_market.ReplayMarketSource`)."""

    def draw(
        self, rng: np.random.Generator, pool: PoolSpec, horizon_hours: float
    ) -> EpisodeMarket: ...


def sample_inputs(rng: np.random.Generator, pool: PoolSpec) -> tuple[MarketInputs, float]:
    """Market inputs and a toxic-flow share drawn from :data:`SAMPLING_RANGES`."""
    r = SAMPLING_RANGES

    def uniform(name: str) -> float:
        low, high = r[name]
        return float(rng.uniform(low, high))

    base = _VOLUME_BASE_LOW_FEE if pool.fee_pips <= 500 else _VOLUME_BASE_HIGH_FEE
    volume = base * uniform("volume_factor")
    mu, sigma = r["gas_log_gwei"]
    gas = math.exp(mu + sigma * float(rng.standard_normal())) + float(rng.uniform(0.5, 3.0))
    inputs = MarketInputs(
        price_usd=pool.reference_price_usd * uniform("price_factor"),
        volatility_daily=uniform("volatility_daily"),
        volume_usd_per_day=volume,
        active_liquidity_usd=volume * uniform("liquidity_to_volume"),
        gas_price_gwei=gas,
        eth_price_usd=_ETH_REFERENCE_USD * uniform("eth_factor"),
    )
    return inputs, uniform("toxic_share")


class SyntheticMarket:
    """clmmd's mock market: GBM price path and noisy volume from a per-episode path seed.

    ``inputs`` fixes the market inputs of every episode (missing fields take the mock's
    defaults, as in ``MockClmmEnv``); ``None`` draws them per episode (:func:`sample_inputs`).
    The gas regime always follows the gas price (the mock intel's thresholds); ``toxic_share``
    is the flow input with fixed ``inputs`` (``None``: unknown flow).
    """

    def __init__(
        self,
        inputs: MarketInputs | None = None,
        *,
        step_minutes: float = 5.0,
        volume_noise: float = DEFAULT_VOLUME_NOISE,
        toxic_share: float | None = None,
    ) -> None:
        self.inputs = inputs
        self.step_minutes = step_minutes
        self.volume_noise = volume_noise
        self.toxic_share = toxic_share

    def draw(self, rng: np.random.Generator, pool: PoolSpec, horizon_hours: float) -> EpisodeMarket:
        """The next episode's market, every random draw taken from ``rng``."""
        toxic: float | None
        if self.inputs is None:
            inputs, toxic = sample_inputs(rng, pool)
        else:
            inputs, toxic = self.inputs, self.toxic_share
        path_seed = int(rng.integers(0, 2**63 - 1))
        return self.market_for(pool, inputs, path_seed, horizon_hours, toxic_share=toxic)

    def market_for(
        self,
        pool: PoolSpec,
        inputs: MarketInputs,
        path_seed: int,
        horizon_hours: float,
        *,
        toxic_share: float | None = None,
    ) -> EpisodeMarket:
        """The market of ``path_seed``: the path ``MockClmmEnv`` simulates for that seed."""
        resolved = resolve_market(pool, inputs)
        prices = price_path(
            path_seed,
            resolved.price_usd,
            resolved.volatility_daily,
            horizon_hours,
            self.step_minutes,
        )
        volumes = volume_series(
            path_seed,
            resolved.volume_usd_per_day,
            len(prices) - 1,
            self.step_minutes,
            self.volume_noise,
        )
        return EpisodeMarket(
            inputs=resolved,
            gas_regime=gas_regime_of(resolved.gas_price_gwei),
            toxic_share=toxic_share,
            path_seed=path_seed,
            prices_usd=prices,
            volumes_usd=volumes,
            step_minutes=self.step_minutes,
        )
