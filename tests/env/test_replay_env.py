"""env.replay_env: the replayed market behind the ClmmEnv interface."""

from __future__ import annotations

import asyncio

import pytest

from clmmd.env.base import KNOWN_POOLS, ExecutionRequest, MarketInputs
from clmmd.env.pricing import usd_price_to_tick, usd_range_to_ticks
from clmmd.env.replay import ReplayMarket
from clmmd.env.replay_env import ReplayClmmEnv, anchored_ticks
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history

POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


@pytest.fixture(scope="module")
def market() -> ReplayMarket:
    history = synthetic_history(POOL, SyntheticMarket(swaps=12_000, seconds_per_swap=30.0, seed=4))
    return ReplayMarket(history, POOL)


def request(seed: int = 1, price: float = 3600.0, **changes: object) -> ExecutionRequest:
    lower, upper = usd_range_to_ticks(POOL, price * 0.97, price * 1.03)
    fields: dict[str, object] = {
        "run_id": "run_x",
        "episode_id": "ep_000001",
        "pool": POOL,
        "tick_lower": lower,
        "tick_upper": upper,
        "size_usd": 10_000.0,
        "risk_scalar": 0.5,
        "horizon_hours": 24.0,
        "seed": seed,
        "market": MarketInputs(price_usd=price, gas_price_gwei=10.0),
    }
    fields.update(changes)
    return ExecutionRequest(**fields)  # type: ignore[arg-type]


def test_same_seed_same_window_and_outcome(market: ReplayMarket) -> None:
    env = ReplayClmmEnv(market)
    first, again = env.run(request(3)), env.run(request(3))
    assert first == again
    other = env.run(request(4))
    assert other.simulation["window_start"] != first.simulation["window_start"]
    sim = first.simulation
    assert sim["source"] == "mock" and sim["market"] == "replay"
    assert first.size_usd_applied == 5000.0 and first.risk_scalar_applied == 0.5
    assert first.pnl_usd == pytest.approx(
        first.hodl_return_usd - first.il_usd + first.fees_usd - first.gas_cost_usd
    )
    assert sim["initial_value_usd"] == pytest.approx(5000.0, rel=1e-6)


def test_the_range_moves_to_the_windows_price_keeping_width_and_offset(
    market: ReplayMarket,
) -> None:
    env = ReplayClmmEnv(market)
    asked = request(5, price=3600.0)  # today's price, far from the history's ~3000
    outcome = env.run(asked)
    sim = outcome.simulation
    width = asked.tick_upper - asked.tick_lower
    assert sim["tick_upper"] - sim["tick_lower"] == width
    window = market.random_window(5, 24.0)
    open_tick = market.state(window.start)[1]
    proposal_tick = usd_price_to_tick(POOL, 3600.0)
    offset_asked = asked.tick_lower - proposal_tick
    offset_applied = sim["tick_lower"] - open_tick
    assert abs(offset_applied - offset_asked) <= POOL.tick_spacing
    assert (sim["tick_lower_requested"], sim["tick_upper_requested"]) == (
        asked.tick_lower,
        asked.tick_upper,
    )
    assert outcome.time_in_range_pct > 0


def test_anchoring_is_whole_spacings_and_stays_in_the_tick_range() -> None:
    assert anchored_ticks(POOL, 100, 200, 150, 1_154) == (1100, 1200)
    top = 887_270
    assert anchored_ticks(POOL, 800_000, 800_100, 0, 887_000) == (top - 100, top)


def test_a_pool_without_history_is_refused(market: ReplayMarket) -> None:
    other = KNOWN_POOLS["0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"]
    lower, upper = usd_range_to_ticks(other, 2900.0, 3100.0)
    with pytest.raises(ValueError, match="has no replay history here"):
        ReplayClmmEnv(market).run(request(pool=other, tick_lower=lower, tick_upper=upper))


def test_vector_and_exact_outcomes_agree(market: ReplayMarket) -> None:
    for seed in range(5):
        fast = ReplayClmmEnv(market, method="vector").run(request(seed))
        exact = ReplayClmmEnv(market, method="exact").run(request(seed))
        assert fast.fees_usd == pytest.approx(exact.fees_usd, rel=1e-9, abs=1e-9)
        assert fast.il_usd == exact.il_usd


async def test_execute_loads_the_market_once_off_the_loop(market: ReplayMarket) -> None:
    loads = []

    def loader() -> ReplayMarket:
        loads.append(1)
        return market

    env = ReplayClmmEnv(loader)
    outcomes = await asyncio.gather(*(env.execute(request(s)) for s in range(4)))
    assert len(loads) == 1 and len(outcomes) == 4
