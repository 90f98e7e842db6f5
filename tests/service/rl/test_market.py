"""The synthetic market: the mock simulator's own path, and every regime while training."""

from __future__ import annotations

from collections import Counter

import numpy as np

from clmmd.agent.regime import MarketView, classify
from clmmd.env.base import KNOWN_POOLS, MarketInputs
from clmmd.env.pricepath import price_path, volume_series
from clmmd.service.rl.market import SyntheticMarket

POOL = next(iter(KNOWN_POOLS.values()))


def test_a_path_seed_gives_the_mock_simulators_path() -> None:
    inputs = MarketInputs(price_usd=2500.0, volatility_daily=0.03, volume_usd_per_day=5e7)
    market = SyntheticMarket().market_for(POOL, inputs, 42, 24.0)
    assert np.array_equal(market.prices_usd, price_path(42, 2500.0, 0.03, 24.0))
    assert np.array_equal(market.volumes_usd, volume_series(42, 5e7, 288))
    # Missing inputs take the mock's defaults, as MockClmmEnv does.
    assert market.inputs.gas_price_gwei == 20.0 and market.gas_regime == "normal"


def test_drawn_markets_cover_every_volatility_and_gas_regime() -> None:
    rng = np.random.default_rng(0)
    source = SyntheticMarket()
    regimes = Counter()
    for _ in range(400):
        m = source.draw(rng, POOL, 24.0)
        r = classify(
            MarketView(
                price_usd=m.inputs.price_usd,
                gas_regime=m.gas_regime,
                volatility_daily=m.inputs.volatility_daily,
                toxic_share=m.toxic_share,
            )
        )
        regimes[("vol", r.vol)] += 1
        regimes[("gas", r.gas)] += 1
        regimes[("flow", r.flow)] += 1
    for component, value in [
        ("vol", "low"), ("vol", "mid"), ("vol", "high"),
        ("gas", "low"), ("gas", "normal"), ("gas", "high"),
        ("flow", "clean"), ("flow", "toxic"),
    ]:  # fmt: skip
        assert regimes[(component, value)] >= 4, (component, value, regimes)


def test_fixed_inputs_are_used_for_every_episode_and_only_the_path_changes() -> None:
    inputs = MarketInputs(price_usd=3000.0, volatility_daily=0.02)
    source = SyntheticMarket(inputs, toxic_share=0.3)
    rng = np.random.default_rng(1)
    first, second = source.draw(rng, POOL, 24.0), source.draw(rng, POOL, 24.0)
    assert first.inputs == second.inputs and first.toxic_share == 0.3
    assert first.path_seed != second.path_seed
    assert not np.array_equal(first.prices_usd, second.prices_usd)
