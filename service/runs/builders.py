"""Building an episode's artifacts from what happened (pure: no I/O, time passed in)."""

from __future__ import annotations

import traceback
from datetime import datetime
from typing import Any, Literal

from clmmd.agent.learner import LearningDecision
from clmmd.agent.reward import RewardWeights
from clmmd.artifacts.base.clock import utc_iso
from clmmd.artifacts.models import (
    EpisodeFailure,
    EpisodeMetadata,
    EpisodeResult,
    MetadataExtra,
    Proposal,
    Reward,
    RewardComponents,
    Simulation,
    Timings,
)
from clmmd.env.base import EnvHealth, ExecutionOutcome, ExecutionSkipped, sent_before

#: What to tell the operator for a failure in each step (the runbook's fixes table agrees).
STAGE_HINTS: dict[str, str] = {
    "snapshot": "the intel cache could not be read: check the cache folder and disk space",
    "propose": "the agent failed to propose: see the traceback; the agent state may be corrupt",
    "validate": "the pool failed validation: check the pool address, chain and network",
    "execute": "execution failed: in mock mode see the traceback, in real mode check Gateway",
    "reward": "the outcome could not be scored: see the traceback",
    "write_result": "the result could not be written: check disk space and permissions",
}


def success_result(
    outcome: ExecutionOutcome, env_name: str, stages: dict[str, float]
) -> EpisodeResult:
    """result.json of an executed episode; the simulation dict is kept whole."""
    simulation = dict(outcome.simulation)
    source = simulation.pop("source", "mock" if env_name == "mock" else "live")
    return EpisodeResult(
        status="success",
        simulation=Simulation(source=source, **simulation),
        pnl_usd=outcome.pnl_usd,
        fees_usd=outcome.fees_usd,
        gas_cost_usd=outcome.gas_cost_usd,
        il_usd=outcome.il_usd,
        hodl_return_usd=outcome.hodl_return_usd,
        time_in_range_pct=outcome.time_in_range_pct,
        risk_scalar_applied=outcome.risk_scalar_applied,
        size_usd_applied=outcome.size_usd_applied,
        timings_ms=dict(stages),
    )


def skipped_result(
    exc: ExecutionSkipped, env_name: str, stages: dict[str, float], weights: RewardWeights
) -> tuple[EpisodeResult, Reward]:
    """result.json + reward.json of an episode a live-risk gate refused (nothing deployed)."""
    result = EpisodeResult(
        status="skipped",
        reason=str(exc),
        simulation=Simulation(source="live" if env_name == "real" else "mock", gate=exc.gate),
        pnl_usd=0.0,
        fees_usd=0.0,
        gas_cost_usd=0.0,
        il_usd=0.0,
        hodl_return_usd=0.0,
        time_in_range_pct=0.0,
        risk_scalar_applied=0.0,
        size_usd_applied=0.0,
        timings_ms=dict(stages),
    )
    reward = Reward(
        total=0.0,
        components=RewardComponents(pnl=0.0, fees=0.0, gas_penalty=0.0, range_penalty=0.0),
        weights=weights.as_dict(),
    )
    return result, reward


def failure(stage: str, exc: BaseException, now: datetime) -> EpisodeFailure:
    """failure.json: the step, the error, its traceback and what to do."""
    spent = sent_before(exc)
    return EpisodeFailure(
        stage=stage,
        error_type=type(exc).__name__,
        error_message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
        hint=STAGE_HINTS.get(stage),
        timestamp=utc_iso(now),
        transactions=spent or None,
        gas_paid_native=sum(float(t.get("gas_native") or 0.0) for t in spent) if spent else None,
    )


def metadata(
    *,
    run_id: str,
    episode_id: str,
    agent_version: str,
    config_hash: str,
    exec_mode: Literal["mock", "real"],
    started: datetime,
    proposal: Proposal | None,
    seed: int,
    learning: LearningDecision,
    health: EnvHealth | None,
    intel_extra: dict[str, Any] | None,
) -> EpisodeMetadata:
    """metadata.json, written last: it records what was actually decided and applied."""
    return EpisodeMetadata(
        run_id=run_id,
        episode_id=episode_id,
        agent_version=(
            proposal.agent_version if proposal and proposal.agent_version else agent_version
        ),
        config_hash=config_hash,
        exec_mode=exec_mode,
        timestamp=utc_iso(started),
        regime_key=proposal.regime_key if proposal else None,
        seed=seed,
        learning_update_applied=learning.apply,
        learning_update_reason=learning.reason,
        gateway_health=health.status if health else None,
        gateway_latency_ms=health.latency_ms if health else None,
        extra=MetadataExtra(**intel_extra) if intel_extra else MetadataExtra(),
    )


def timings(
    stages: dict[str, float], total_s: float, started: datetime, ended: datetime
) -> Timings:
    return Timings(
        stages_ms=dict(stages),
        total_ms=round(total_s * 1000.0, 3),
        started_at=utc_iso(started),
        ended_at=utc_iso(ended),
    )
