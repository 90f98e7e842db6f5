"""Does learning help? The learned policy against a static range, on the same price paths.

``evaluate`` replays what a mock campaign with seed ``S`` would see: the intel cache warmed from
the mock source seeded by ``S`` (in a throw-away cache folder), episode ``i`` seeded
``derive_seed(S, i)``. For every episode it simulates two positions through
:class:`env.mock.MockClmmEnv` directly (no artifact folders): the learned policy's greedy choice
(posterior-mean argmax, no exploration) and a static ±X % range around the price, with the same
size and risk scalar. The price path depends only on the episode seed and the market inputs, so
both positions see the same path, and the same path as that campaign's episode ``i``.

Statistics: per arm and metric, the mean with a 95 % confidence interval ``mean ± t·s/√n``
(Student's t with n−1 degrees of freedom, exact table up to 30, a Cornish–Fisher expansion
beyond); the paired difference learned − baseline is computed per episode and gets the same
interval, which is much tighter than comparing two unpaired means because both arms share the
path. Episodes are independent given the seeds, so the t interval is the honest one.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import statistics
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import structlog

from agent.persistence import PersistentAgent, default_state_path, read_state
from agent.proposer import ProposalContext, propose
from agent.reward import compute_reward
from agent.state import AgentState
from artifacts.layout import episode_id
from env.base import ExecutionRequest, PoolSpec, pool_by_address
from env.mock import MockClmmEnv
from env.pricing import usd_range_to_ticks
from scheduler.cache import IntelCache
from scheduler.intel import IntelSnapshot, MarketIntelligence
from service.campaign import CampaignReport, episode_settings, run_campaign
from service.clock import Clock, SystemClock
from service.config import Settings
from service.episodes import AgentHandle, EpisodeSettings, derive_seed, market_view
from service.warmup import warm_mock_intel
from service.wiring import load_configured_registry, open_intel

log = structlog.get_logger(__name__)

METRICS: tuple[str, ...] = (
    "reward",
    "pnl_usd",
    "fees_usd",
    "il_usd",
    "gas_cost_usd",
    "time_in_range_pct",
)
#: Two-sided 95 % Student t quantiles (0.975) for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Interval:
    """A mean with its 95 % confidence interval (``low``/``high`` are None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def mean_interval(values: Sequence[float]) -> Interval:
    """``mean ± t(0.975, n−1) · s / √n``."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n)
    half = t_quantile_975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class ArmOutcome:
    """One simulated position of one evaluation episode."""

    width_ticks: int  # tick_upper − tick_lower after snapping to the tick spacing
    tick_lower: int
    tick_upper: int
    start_price_usd: float
    end_price_usd: float
    values: dict[str, float]  # one entry per name in METRICS


@dataclass(frozen=True)
class PairedEpisode:
    """Both arms of one episode; ``policy_width_ticks`` is the arm the policy chose."""

    index: int
    seed: int
    policy_width_ticks: int
    learned: ArmOutcome
    baseline: ArmOutcome


@dataclass(frozen=True)
class EvaluationReport:
    seed: int
    first_index: int
    baseline_width_pct: float
    regime_key: str
    agent_version: str
    pool_address: str
    episodes: tuple[PairedEpisode, ...]
    learned: dict[str, Interval] = field(default_factory=dict)
    baseline: dict[str, Interval] = field(default_factory=dict)
    difference: dict[str, Interval] = field(default_factory=dict)

    @property
    def learned_widths(self) -> dict[int, int]:
        """How often the learned policy chose each arm (policy width in ticks)."""
        return dict(sorted(Counter(e.policy_width_ticks for e in self.episodes).items()))


def baseline_ticks(pool: PoolSpec, price_usd: float, width_pct: float) -> tuple[int, int]:
    """The static range ``price × (1 ± width_pct/100)``, widened to the pool's tick spacing."""
    if not 0 < width_pct < 100:
        raise ValueError(f"baseline width must be in (0, 100) percent, got {width_pct}")
    share = width_pct / 100.0
    return usd_range_to_ticks(pool, price_usd * (1 - share), price_usd * (1 + share))


def _arm(env: MockClmmEnv, request: ExecutionRequest, s: EpisodeSettings) -> ArmOutcome:
    outcome = env.run(request)
    reward = compute_reward(
        pnl_usd=outcome.pnl_usd,
        fees_usd=outcome.fees_usd,
        gas_cost_usd=outcome.gas_cost_usd,
        time_in_range_pct=outcome.time_in_range_pct,
        size_usd_applied=outcome.size_usd_applied,
        weights=s.reward_weights,
    )
    return ArmOutcome(
        width_ticks=request.tick_upper - request.tick_lower,
        tick_lower=request.tick_lower,
        tick_upper=request.tick_upper,
        start_price_usd=float(outcome.simulation["start_price_usd"]),
        end_price_usd=float(outcome.simulation["end_price_usd"]),
        values={
            "reward": reward.total,
            "pnl_usd": outcome.pnl_usd,
            "fees_usd": outcome.fees_usd,
            "il_usd": outcome.il_usd,
            "gas_cost_usd": outcome.gas_cost_usd,
            "time_in_range_pct": outcome.time_in_range_pct,
        },
    )


def evaluate_on_snapshot(
    s: EpisodeSettings,
    pool: PoolSpec,
    snapshot: IntelSnapshot,
    state: AgentState,
    *,
    episodes: int,
    first_index: int = 1,
    baseline_width_pct: float = 5.0,
) -> EvaluationReport:
    """The pure core of :func:`evaluate` (CPU only): both arms on episodes ``first_index``…"""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if first_index < 1:
        raise ValueError(f"first_index must be at least 1, got {first_index}")
    env = MockClmmEnv()
    view = market_view(snapshot)
    market = snapshot.market_inputs()
    pairs: list[PairedEpisode] = []
    regime_key = ""
    for index in range(first_index, first_index + episodes):
        seed = derive_seed(s.campaign_seed, index)
        ctx = ProposalContext(
            run_id=s.run_id,
            episode_id=episode_id(index),
            seed=seed,
            pool=pool,
            view=view,
            size_usd=s.size_usd,
            horizon_hours=s.horizon_hours,
            risk_scalar_override=s.risk_scalar_override,
            risk_profile=s.risk_profile,
        )
        proposal = propose(ctx, state, greedy=True)
        assert proposal.tick_lower is not None and proposal.tick_upper is not None
        assert proposal.price_at_proposal_usd is not None and proposal.risk_scalar is not None
        assert proposal.action is not None
        regime_key = proposal.regime_key or ""
        learned = ExecutionRequest(
            run_id=s.run_id,
            episode_id=ctx.episode_id,
            pool=pool,
            tick_lower=proposal.tick_lower,
            tick_upper=proposal.tick_upper,
            size_usd=s.size_usd,
            risk_scalar=proposal.risk_scalar,
            horizon_hours=s.horizon_hours,
            seed=seed,
            market=market,
        )
        low, high = baseline_ticks(pool, proposal.price_at_proposal_usd, baseline_width_pct)
        baseline = ExecutionRequest(
            run_id=s.run_id,
            episode_id=ctx.episode_id,
            pool=pool,
            tick_lower=low,
            tick_upper=high,
            size_usd=s.size_usd,
            risk_scalar=proposal.risk_scalar,
            horizon_hours=s.horizon_hours,
            seed=seed,
            market=market,
        )
        pairs.append(
            PairedEpisode(
                index,
                seed,
                proposal.action.width_ticks,
                _arm(env, learned, s),
                _arm(env, baseline, s),
            )
        )
    return EvaluationReport(
        seed=s.campaign_seed,
        first_index=first_index,
        baseline_width_pct=baseline_width_pct,
        regime_key=regime_key,
        agent_version=state.agent_version,
        pool_address=pool.address,
        episodes=tuple(pairs),
        learned={m: mean_interval([p.learned.values[m] for p in pairs]) for m in METRICS},
        baseline={m: mean_interval([p.baseline.values[m] for p in pairs]) for m in METRICS},
        difference={
            m: mean_interval([p.learned.values[m] - p.baseline.values[m] for p in pairs])
            for m in METRICS
        },
    )


async def seeded_mock_snapshot(
    settings: Settings, seed: int, pool: PoolSpec, lookback_hours: float, clock: Clock
) -> IntelSnapshot:
    """The snapshot a mock campaign with ``seed`` gives its episodes (throw-away cache)."""
    registry = load_configured_registry(settings)
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="clmmd-eval-intel-"))
    try:
        cache = await asyncio.to_thread(IntelCache, folder)
        try:
            await warm_mock_intel(cache, registry, clock, list(settings.pools), seed)
            intel = MarketIntelligence(cache, registry, clock)
            return await asyncio.to_thread(intel.snapshot, pool.address, pool.pair, lookback_hours)
        finally:
            await asyncio.to_thread(cache.close)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def evaluate(
    settings: Settings,
    *,
    episodes: int,
    seed: int,
    baseline_width_pct: float = 5.0,
    state: AgentState | None = None,
    clock: Clock | None = None,
    first_index: int = 1,
) -> EvaluationReport:
    """Learned policy (greedy) vs a static ±``baseline_width_pct`` % range on the same paths.

    ``state`` None reads the saved state at ``<data_dir>/agent/state.json`` (the prior when
    there is none; ``agent.persistence.StateFormatError`` when the file is corrupt).
    ``first_index`` > 1 evaluates on episode seeds a training campaign of ``first_index − 1``
    episodes with the same seed did not use. Intel is always the seeded mock intel and execution
    always the mock simulator, whatever HB_ENV / INTEL_DATA_SOURCE say.
    """
    clock = clock or SystemClock()
    if state is None:
        path = default_state_path(settings.data_dir)
        state = await asyncio.to_thread(read_state, path) or AgentState()
    trained = state
    pool = pool_by_address(settings.pools[0])
    s = episode_settings(settings, "evaluation", seed)
    snapshot = await seeded_mock_snapshot(settings, seed, pool, s.lookback_hours, clock)
    report = await asyncio.to_thread(
        lambda: evaluate_on_snapshot(
            s,
            pool,
            snapshot,
            trained,
            episodes=episodes,
            first_index=first_index,
            baseline_width_pct=baseline_width_pct,
        )
    )
    diff = report.difference["reward"]
    log.info(
        "evaluation_done",
        seed=seed,
        episodes=episodes,
        first_index=first_index,
        regime_key=report.regime_key,
        agent_version=report.agent_version,
        reward_learned=round(report.learned["reward"].mean, 6),
        reward_baseline=round(report.baseline["reward"].mean, 6),
        reward_difference=round(diff.mean, 6),
        difference_ci=[diff.low, diff.high],
    )
    return report


@dataclass(frozen=True)
class TrainingEvaluation:
    campaign: CampaignReport
    evaluation: EvaluationReport
    state_path: Path


async def train_then_evaluate(
    settings: Settings,
    *,
    train_episodes: int,
    eval_episodes: int,
    seed: int,
    baseline_width_pct: float = 5.0,
    state_path: Path | None = None,
    clock: Clock | None = None,
) -> TrainingEvaluation:
    """A mock training campaign (LEARN_FROM_MOCK=true, state saved at ``state_path``, default
    ``<data_dir>/agent/state.json``, continuing from what is there), then :func:`evaluate`
    on the next ``eval_episodes`` episode seeds of the same campaign seed (held out)."""
    if settings.exec_mode != "mock":
        raise ValueError("train_then_evaluate trains on mock episodes only: set HB_ENV=mock")
    clock = clock or SystemClock()
    settings = settings.model_copy(
        update={"learn_from_mock": True, "seed": seed, "intel_data_source": "mock"}
    )
    path = state_path or default_state_path(settings.data_dir)
    agent = await PersistentAgent.open(path, clock, durable=settings.durable_writes)
    await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
    stack = await asyncio.to_thread(open_intel, settings, clock)
    try:
        await warm_mock_intel(stack.cache, stack.registry, clock, list(settings.pools), seed)
        campaign = await run_campaign(
            settings,
            env=MockClmmEnv(),
            intel=stack.intel,
            episodes=train_episodes,
            clock=clock,
            # PersistentAgent has AgentHandle's interface (agent.persistence.LearningAgent);
            # the cast stands until EpisodeRunner/run_campaign take that protocol.
            agent=cast(AgentHandle, agent),
        )
    finally:
        await asyncio.to_thread(stack.close)
    evaluation = await evaluate(
        settings,
        episodes=eval_episodes,
        seed=seed,
        baseline_width_pct=baseline_width_pct,
        state=agent.state,
        clock=clock,
        first_index=train_episodes + 1,
    )
    return TrainingEvaluation(campaign, evaluation, path)


def _cell(interval: Interval, digits: int) -> str:
    if interval.low is None or interval.high is None:
        return f"{interval.mean:.{digits}f}"
    return f"{interval.mean:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def format_report(report: EvaluationReport) -> str:
    """A plain-text table: per metric, both arms and the paired difference with 95 % CIs."""
    n = len(report.episodes)
    last = report.first_index + n - 1
    lines = [
        f"evaluation: seed {report.seed}, episodes {report.first_index}..{last} (n={n}), "
        f"pool {report.pool_address}",
        f"regime {report.regime_key}   agent {report.agent_version}   "
        f"learned widths (ticks: count) {report.learned_widths}",
        f"baseline: static ±{report.baseline_width_pct:g} % range, same size and risk scalar",
        "means with 95 % t confidence intervals; difference is paired, per episode",
        "",
        f"{'metric':<18} {'learned':<32} {'baseline':<32} {'learned - baseline':<32}",
    ]
    for metric in METRICS:
        digits = 4 if metric == "reward" else 2
        diff = report.difference[metric]
        flag = "  *" if diff.excludes_zero else ""
        lines.append(
            f"{metric:<18} {_cell(report.learned[metric], digits):<32} "
            f"{_cell(report.baseline[metric], digits):<32} {_cell(diff, digits)}{flag}"
        )
    lines.append("")
    lines.append("* the difference's 95 % interval excludes zero")
    return "\n".join(lines)
