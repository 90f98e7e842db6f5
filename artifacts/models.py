"""Pydantic schemas of every artifact an episode or a run writes.

Models forbid unknown fields so the validator catches drift between writer and contract.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CONNECTOR_EXECUTION: Literal["uniswap_v3_clmm"] = "uniswap_v3_clmm"

Quality = Literal["fresh", "stale", "too_old", "missing"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeAction(_Strict):
    """The discrete action the policy chose."""

    width_ticks: int
    fee_pips: int


class Proposal(_Strict):
    """proposal.json. ``proposed`` is false when the agent failed; ``reason`` then says why."""

    run_id: str
    episode_id: str
    proposed: bool
    reason: str | None = None
    pool_address: str | None = None
    pair: str | None = None
    chain: str | None = None
    network: str | None = None
    fee_pips: int | None = None
    tick_lower: int | None = None
    tick_upper: int | None = None
    price_lower_usd: float | None = None
    price_upper_usd: float | None = None
    price_at_proposal_usd: float | None = None
    size_usd: float | None = None
    horizon_hours: float | None = None
    action: RangeAction | None = None
    regime_key: str | None = None
    risk_scalar: float | None = None
    expected_reward: float | None = None
    agent_version: str | None = None
    seed: int | None = None
    #: The ``episodes`` trigger this episode was run for (absent: a campaign or the schedule).
    trigger_id: str | None = None


class IntelEntry(_Strict):
    quality: Quality
    age_s: float | None
    asof: str | None


class IntelInputs(_Strict):
    pool_address: str | None
    pair: str | None
    lookback_hours: float | None


class IntelHygiene(_Strict):
    total_queries: int
    fresh: int
    stale: int
    missing_or_too_old: int
    fresh_pct: float


class MetadataExtra(BaseModel):
    """metadata.extra; open to additions (later issues add fields), intel fields required."""

    model_config = ConfigDict(extra="allow", frozen=True)

    intel_snapshot: dict[str, IntelEntry] = Field(default_factory=dict)
    intel_inputs: IntelInputs | None = None
    intel_hygiene: IntelHygiene | None = None


class EpisodeMetadata(_Strict):
    """metadata.json: every field SPEC lists."""

    run_id: str
    episode_id: str
    agent_version: str
    config_hash: str
    exec_mode: Literal["mock", "real"]
    connector_execution: Literal["uniswap_v3_clmm"] = CONNECTOR_EXECUTION
    timestamp: str
    regime_key: str | None
    seed: int
    learning_update_applied: bool
    learning_update_reason: str
    gateway_health: str | None = None
    gateway_latency_ms: float | None = None
    extra: MetadataExtra = Field(default_factory=MetadataExtra)


class Simulation(BaseModel):
    """result.simulation: ``source`` plus whatever the environment reports."""

    model_config = ConfigDict(extra="allow", frozen=True)

    source: Literal["mock", "live"]


class EpisodeResult(_Strict):
    """result.json."""

    status: Literal["success", "failed", "skipped"]
    reason: str | None = None
    simulation: Simulation
    pnl_usd: float
    fees_usd: float
    gas_cost_usd: float
    il_usd: float
    # PnL = hodl_return − IL + fees − gas (None in results written before it was recorded).
    hodl_return_usd: float | None = None
    time_in_range_pct: float
    risk_scalar_applied: float
    size_usd_applied: float
    timings_ms: dict[str, float]


class RewardComponents(_Strict):
    pnl: float
    fees: float
    gas_penalty: float
    range_penalty: float


class Reward(_Strict):
    """reward.json."""

    total: float
    components: RewardComponents
    weights: dict[str, float] = Field(default_factory=dict)


class EpisodeFailure(_Strict):
    """failure.json: which stage failed, how, and what to do about it."""

    stage: str
    error_type: str
    error_message: str
    traceback: str | None = None
    exit_code: int | None = None
    hint: str | None = None
    timestamp: str
    #: Live mode: the transactions sent before the failure (approvals, a mined open…), each
    #: with its gas, and their gas in the native token: money the episode spent.
    transactions: list[dict[str, Any]] | None = None
    gas_paid_native: float | None = None


class Timings(_Strict):
    """timings.json: wall time per stage in milliseconds, and the total."""

    stages_ms: dict[str, float]
    total_ms: float
    started_at: str
    ended_at: str


class LogLine(_Strict):
    """One line of an episode's logs.jsonl."""

    ts: str
    event: str
    payload: dict[str, Any] = Field(default_factory=dict)


class MetricsSummary(_Strict):
    """metrics_summary.json, rewritten atomically as episodes end."""

    run_id: str
    updated_at: str
    episodes: int
    successful: int
    failed: int
    skipped: int
    total_pnl_usd: float
    total_fees_usd: float
    total_gas_usd: float
    total_il_usd: float
    risk_scalar_applied: str
    mean_fresh_pct: float | None = None
    # total PnL = HODL return − IL + fees − gas; None when an episode's result lacks its term.
    total_hodl_return_usd: float | None = None


class RunInfo(_Strict):
    """run.json: facts fixed for the whole run, written once when it starts."""

    run_id: str
    started_at: str
    kind: Literal["campaign", "daemon", "sweep"]
    config_hash: str
    exec_mode: Literal["mock", "real"]
    seed: int
    agent_version: str
    pid: int
    config: dict[str, Any]


ARTIFACT_MODELS: dict[str, type[BaseModel]] = {
    "proposal.json": Proposal,
    "metadata.json": EpisodeMetadata,
    "result.json": EpisodeResult,
    "failure.json": EpisodeFailure,
    "reward.json": Reward,
    "timings.json": Timings,
}
