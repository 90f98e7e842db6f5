"""From market view, pool and seed to a proposal (pure apart from reading the state)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from clmmd.agent.policy import DEFAULT_WIDTHS, choose_width
from clmmd.agent.regime import MarketView, classify
from clmmd.agent.risk import DEFAULT_PROFILE, risk_scalar
from clmmd.agent.state import AgentState
from clmmd.artifacts.models import Proposal, RangeAction
from clmmd.env.base import PoolSpec
from clmmd.env.pricing import ticks_to_usd_range, usd_price_to_tick
from clmmd.env.uniswap_math import snap_range


@dataclass(frozen=True)
class ProposalContext:
    run_id: str
    episode_id: str
    seed: int
    pool: PoolSpec
    view: MarketView
    size_usd: float
    horizon_hours: float
    risk_scalar_override: float | None = None
    risk_profile: Mapping[str, float] | None = None


def centred_range(pool: PoolSpec, price_usd: float, width_ticks: int) -> tuple[int, int]:
    """The ticks of a ``width_ticks``-wide range centred on ``price_usd``, widened to the pool's
    tick spacing (what an arm of the policy means as a position)."""
    centre = usd_price_to_tick(pool, price_usd)
    half = width_ticks // 2
    return snap_range(centre - half, centre + half, pool.tick_spacing)


def propose(ctx: ProposalContext, state: AgentState, *, greedy: bool = False) -> Proposal:
    """Choose a range for ``ctx.pool`` around the current price."""
    regime = classify(ctx.view)
    price = ctx.view.price_usd or ctx.pool.reference_price_usd
    rng = random.Random(ctx.seed)
    choice = choose_width(state.arms_for(regime.key), rng, DEFAULT_WIDTHS, greedy=greedy)
    lower, upper = centred_range(ctx.pool, price, choice.width_ticks)
    usd_low, usd_high = ticks_to_usd_range(ctx.pool, lower, upper)
    return Proposal(
        run_id=ctx.run_id,
        episode_id=ctx.episode_id,
        proposed=True,
        pool_address=ctx.pool.address,
        pair=ctx.pool.pair,
        chain=ctx.pool.chain,
        network=ctx.pool.network,
        fee_pips=ctx.pool.fee_pips,
        tick_lower=lower,
        tick_upper=upper,
        price_lower_usd=round(usd_low, 6),
        price_upper_usd=round(usd_high, 6),
        price_at_proposal_usd=round(price, 6),
        size_usd=ctx.size_usd,
        horizon_hours=ctx.horizon_hours,
        action=RangeAction(width_ticks=choice.width_ticks, fee_pips=ctx.pool.fee_pips),
        regime_key=regime.key,
        risk_scalar=risk_scalar(
            regime,
            profile={**DEFAULT_PROFILE, **ctx.risk_profile} if ctx.risk_profile else None,
            override=ctx.risk_scalar_override,
        ),
        expected_reward=round(choice.expected_reward, 9),
        agent_version=state.agent_version,
        seed=ctx.seed,
    )
