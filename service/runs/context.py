"""What an episode runs with: its settings, the intel it reads, the agent it asks and teaches.

Small interfaces (``IntelReader``, ``LearningAgent``) so tests swap fakes in; pure helpers
(seed derivation, the agent's view of a snapshot).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from clmmd.agent.regime import MarketView
from clmmd.agent.reward import RewardWeights
from clmmd.agent.state import AgentState
from clmmd.artifacts.models import Proposal
from clmmd.env.base import ExecutionRequest, MarketInputs, PoolSpec


class IntelSnapshotView(Protocol):
    """What the runner needs of an intel snapshot (scheduler.intel provides it)."""

    @property
    def hygiene(self) -> Mapping[str, Any]: ...

    def as_metadata_extra(self) -> dict[str, Any]: ...

    def market_inputs(self) -> MarketInputs: ...

    def value(self, query: str, field: str) -> Any: ...


class IntelReader(Protocol):
    """Cache-only snapshot provider: never touches the network, never waits on a refresh."""

    def snapshot(
        self, pool_address: str, pair: str, lookback_hours: float
    ) -> IntelSnapshotView: ...


class AgentHandle:
    """The shared agent state; updates from concurrent episodes are serialised by a lock."""

    def __init__(self, state: AgentState | None = None) -> None:
        self.state = state or AgentState()
        self._lock = asyncio.Lock()

    async def learn(self, regime_key: str, width_ticks: int, reward: float) -> AgentState:
        async with self._lock:
            self.state = self.state.with_reward(regime_key, width_ticks, reward)
            return self.state


@dataclass(frozen=True)
class EpisodeSettings:
    """Everything an episode needs from the configuration (checked where it is used)."""

    run_id: str
    campaign_seed: int
    config_hash: str
    exec_mode: Literal["mock", "real"]
    learn_from_mock: bool
    size_usd: float
    horizon_hours: float
    lookback_hours: float = 1.0
    risk_scalar_override: float | None = None
    risk_profile: Mapping[str, float] = field(default_factory=dict)
    fresh_pct_floor: float = 50.0
    reward_weights: RewardWeights = field(default_factory=RewardWeights)


def derive_seed(campaign_seed: int, index: int) -> int:
    """Per-episode seed: a stable hash of the campaign seed and the episode index."""
    digest = hashlib.blake2b(f"{campaign_seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


def market_view(snapshot: IntelSnapshotView | None) -> MarketView:
    if snapshot is None:
        return MarketView()
    inputs = snapshot.market_inputs()
    toxic = snapshot.value("toxic_flow", "toxic_share")
    gas = snapshot.value("gas_regime", "regime")
    fresh = snapshot.hygiene.get("fresh_pct", 0.0)
    return MarketView(
        price_usd=inputs.price_usd,
        gas_regime=gas if isinstance(gas, str) else None,
        volatility_daily=inputs.volatility_daily,
        toxic_share=float(toxic) if isinstance(toxic, (int, float)) else None,
        fresh_pct=float(fresh) if isinstance(fresh, (int, float)) else 0.0,
    )


def execution_request(
    s: EpisodeSettings,
    proposal: Proposal,
    *,
    pool: PoolSpec,
    seed: int,
    market: MarketInputs,
) -> ExecutionRequest:
    """The one translation of a proposal into what the environment executes, used by the
    runner and by the evaluation (so the evaluation measures the policy the runner runs).

    The proposal's own size, horizon and risk scalar win; the settings fill what it left out.
    """
    if proposal.tick_lower is None or proposal.tick_upper is None:
        raise ValueError(f"proposal {proposal.episode_id} has no range: {proposal.reason}")
    return ExecutionRequest(
        run_id=s.run_id,
        episode_id=proposal.episode_id,
        pool=pool,
        tick_lower=proposal.tick_lower,
        tick_upper=proposal.tick_upper,
        size_usd=proposal.size_usd or s.size_usd,
        risk_scalar=proposal.risk_scalar if proposal.risk_scalar is not None else 1.0,
        horizon_hours=proposal.horizon_hours or s.horizon_hours,
        seed=seed,
        market=market,
    )
