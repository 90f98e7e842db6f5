"""Proposer: a snapped, ordered range around the price, in either token orientation,
deterministic for a seed and a state."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmmd.agent.policy import DEFAULT_WIDTHS, ArmStats, posterior
from clmmd.agent.proposer import ProposalContext, propose
from clmmd.agent.regime import MarketView, classify
from clmmd.agent.risk import risk_scalar
from clmmd.agent.state import AgentState
from clmmd.env.base import KNOWN_POOLS, PoolSpec
from clmmd.env.pricing import tick_to_usd_price

POOLS = sorted(KNOWN_POOLS.values(), key=lambda p: p.address)
VIEW = MarketView(price_usd=2500.0, gas_regime="normal", volatility_daily=0.03, toxic_share=0.1)


def ctx(pool: PoolSpec, seed: int = 11, view: MarketView = VIEW, **kw: object) -> ProposalContext:
    return ProposalContext(
        run_id="run_20260301_120000_abcd",
        episode_id="ep_000001",
        seed=seed,
        pool=pool,
        view=view,
        size_usd=1000.0,
        horizon_hours=24.0,
        **kw,  # type: ignore[arg-type]
    )


def test_both_token_orientations_are_covered() -> None:
    assert {p.stable_token for p in POOLS} == {0, 1}
    assert len({p.tick_spacing for p in POOLS}) > 1


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: f"{p.pair}-{p.fee_pips}")
@pytest.mark.parametrize("seed", range(8))
def test_range_is_snapped_ordered_and_contains_the_price(pool: PoolSpec, seed: int) -> None:
    p = propose(ctx(pool, seed), AgentState())
    assert p.proposed
    assert p.tick_lower is not None and p.tick_upper is not None
    assert p.tick_lower % pool.tick_spacing == 0
    assert p.tick_upper % pool.tick_spacing == 0
    assert p.tick_lower < p.tick_upper
    assert p.action is not None
    width = p.tick_upper - p.tick_lower
    assert p.action.width_ticks <= width < p.action.width_ticks + 2 * pool.tick_spacing
    assert p.price_lower_usd is not None and p.price_upper_usd is not None
    assert p.price_lower_usd < p.price_at_proposal_usd == 2500.0 < p.price_upper_usd  # type: ignore[operator]


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: f"{p.pair}-{p.fee_pips}")
def test_usd_bounds_are_the_prices_of_the_tick_bounds_in_either_orientation(
    pool: PoolSpec,
) -> None:
    p = propose(ctx(pool), AgentState())
    assert p.tick_lower is not None and p.tick_upper is not None
    at_lower = tick_to_usd_price(pool, p.tick_lower)
    at_upper = tick_to_usd_price(pool, p.tick_upper)
    # USDC as token0 inverts the price: the lower tick is the *higher* USD price.
    if pool.stable_token == 0:
        assert at_lower > at_upper
    else:
        assert at_lower < at_upper
    assert p.price_lower_usd == pytest.approx(min(at_lower, at_upper), rel=1e-9)
    assert p.price_upper_usd == pytest.approx(max(at_lower, at_upper), rel=1e-9)


def test_proposal_carries_the_pool_context_and_regime() -> None:
    pool = POOLS[0]
    state = AgentState().with_reward(classify(VIEW).key, 1000, 0.2)
    p = propose(ctx(pool), state)
    assert p.run_id == "run_20260301_120000_abcd"
    assert p.episode_id == "ep_000001"
    assert (p.pool_address, p.pair, p.chain, p.network) == (
        pool.address,
        pool.pair,
        pool.chain,
        pool.network,
    )
    assert p.fee_pips == pool.fee_pips
    assert p.action is not None and p.action.fee_pips == pool.fee_pips
    assert p.action.width_ticks in DEFAULT_WIDTHS
    assert p.size_usd == 1000.0
    assert p.horizon_hours == 24.0
    assert p.regime_key == classify(VIEW).key
    assert p.risk_scalar == risk_scalar(classify(VIEW))
    assert p.agent_version == state.agent_version
    assert p.seed == 11


def test_risk_scalar_override_reaches_the_proposal() -> None:
    p = propose(ctx(POOLS[0], risk_scalar_override=0.37), AgentState())
    assert p.risk_scalar == 0.37


def test_without_a_price_the_pool_reference_price_is_used() -> None:
    pool = POOLS[0]
    p = propose(ctx(pool, view=MarketView()), AgentState())
    assert p.price_at_proposal_usd == pool.reference_price_usd
    assert p.price_lower_usd < pool.reference_price_usd < p.price_upper_usd  # type: ignore[operator]
    assert p.regime_key == "gas=unknown|vol=unknown|flow=unknown"


def trained_state() -> AgentState:
    state = AgentState()
    key = classify(VIEW).key
    for width, reward in [(200, -0.5), (500, 0.1), (2000, 0.9), (2000, 1.1), (4000, 0.0)]:
        state = state.with_reward(key, width, reward)
    return state


@pytest.mark.parametrize("state", [AgentState(), trained_state()], ids=["fresh", "trained"])
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: f"{p.pair}-{p.fee_pips}")
def test_same_seed_and_state_give_an_identical_proposal(pool: PoolSpec, state: AgentState) -> None:
    for seed in range(10):
        assert propose(ctx(pool, seed), state) == propose(ctx(pool, seed), state)


def test_the_seed_and_the_state_both_matter() -> None:
    pool = POOLS[0]
    widths = {propose(ctx(pool, seed), AgentState()).action.width_ticks for seed in range(40)}  # type: ignore[union-attr]
    assert len(widths) > 1
    fresh = [propose(ctx(pool, s), AgentState()) for s in range(40)]
    trained = [propose(ctx(pool, s), trained_state()) for s in range(40)]
    assert fresh != trained


def test_greedy_proposes_the_best_learned_width() -> None:
    state = trained_state()
    arms = state.arms_for(classify(VIEW).key)
    best = max(DEFAULT_WIDTHS, key=lambda w: posterior(arms.get(w, ArmStats()))[0])
    for seed in range(5):
        p = propose(ctx(POOLS[0], seed), state, greedy=True)
        assert p.action is not None and p.action.width_ticks == best == 2000
        assert p.expected_reward == pytest.approx(posterior(arms[2000])[0], abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    pool=st.sampled_from(POOLS),
    price=st.floats(min_value=0.5, max_value=200_000),
    seed=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_invariants_hold_for_any_price_and_seed(pool: PoolSpec, price: float, seed: int) -> None:
    p = propose(ctx(pool, seed, replace(VIEW, price_usd=price)), AgentState())
    assert p.tick_lower is not None and p.tick_upper is not None
    assert p.tick_lower % pool.tick_spacing == 0 == p.tick_upper % pool.tick_spacing
    assert p.tick_lower < p.tick_upper
    assert p.price_lower_usd is not None and p.price_upper_usd is not None
    assert p.price_lower_usd <= round(price, 6) <= p.price_upper_usd
