"""Does learning help? The learned policy against a static range, on the same price paths.

``evaluate`` replays what a mock campaign with seed ``S`` would see: the intel cache warmed from
the mock source seeded by ``S`` for each market phase the episodes fall in (in a throw-away
cache folder; :mod:`service.runs.warmup`), episode ``i`` seeded ``derive_seed(S, i)``. For
every episode it simulates two positions (:mod:`service.evaluation_paired`): the learned
policy's greedy choice and a static ±X % range around the price, with the same size and risk
scalar. Both see the same price path, and the
same path as that campaign's episode ``i``.

Statistics (:mod:`service.evaluation_stats`): per arm and metric, the mean with a 95 %
confidence interval (Student's t); the paired difference learned − baseline is computed per
episode and gets the same interval, much tighter than comparing two unpaired means because both
arms share the path.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from clmmd.agent.persistence import PersistentAgent, default_state_path, read_state
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import Clock, SystemClock
from clmmd.env.base import PoolSpec, pool_by_address
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.intel import IntelSnapshot, MarketIntelligence
from clmmd.service.analysis.evaluation_paired import (
    METRIC_SPECS,
    METRICS,
    ArmOutcome,
    EvaluationReport,
    PairedEpisode,
    baseline_ticks,
    evaluate_on_snapshot,
    evaluate_paired,
)
from clmmd.service.analysis.evaluation_stats import (
    Interval,
    mean_interval,
    paired_difference,
    t_quantile_975,
)
from clmmd.service.config import Settings
from clmmd.service.market import mock_env
from clmmd.service.runs.campaign import CampaignReport, run_campaign
from clmmd.service.runs.opening import episode_settings
from clmmd.service.runs.warmup import MockMarketPhases, phase_of, warm_mock_intel
from clmmd.service.wiring import load_configured_registry, open_intel

log = structlog.get_logger(__name__)


async def seeded_mock_snapshots(
    settings: Settings,
    seed: int,
    pools: list[PoolSpec],
    lookback_hours: float,
    clock: Clock,
    phase: int = 0,
) -> dict[str, IntelSnapshot]:
    """The snapshots a mock campaign with ``seed`` gives its episodes of market ``phase`` in
    each of ``pools``, by address (one throw-away cache, warmed for all of them)."""
    registry = load_configured_registry(settings)
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="clmmd-eval-intel-"))
    addresses = list(dict.fromkeys([*settings.pools, *(p.address for p in pools)]))
    try:
        cache = await asyncio.to_thread(IntelCache, folder)
        try:
            await warm_mock_intel(cache, registry, clock, addresses, seed, phase)
            intel = MarketIntelligence(cache, registry, clock)
            return {
                pool.address: await asyncio.to_thread(
                    intel.snapshot, pool.address, pool.pair, lookback_hours
                )
                for pool in pools
            }
        finally:
            await asyncio.to_thread(cache.close)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def seeded_mock_snapshot(
    settings: Settings,
    seed: int,
    pool: PoolSpec,
    lookback_hours: float,
    clock: Clock,
    phase: int = 0,
) -> IntelSnapshot:
    """The snapshot a mock campaign with ``seed`` gives its episodes of ``phase`` in ``pool``."""
    snapshots = await seeded_mock_snapshots(settings, seed, [pool], lookback_hours, clock, phase)
    return snapshots[pool.address]


async def seeded_mock_phase_snapshots(
    settings: Settings,
    seed: int,
    pool: PoolSpec,
    lookback_hours: float,
    clock: Clock,
    phases: Iterable[int],
) -> dict[int, IntelSnapshot]:
    """:func:`seeded_mock_snapshot` for each of ``phases``, by phase."""
    return {
        phase: await seeded_mock_snapshot(settings, seed, pool, lookback_hours, clock, phase)
        for phase in sorted(set(phases))
    }


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
    always mock execution (in CLMMD_MARKET's market), whatever HB_ENV / INTEL_DATA_SOURCE say.
    """
    clock = clock or SystemClock()
    if state is None:
        path = default_state_path(settings.data_dir)
        state = await asyncio.to_thread(read_state, path) or AgentState()
    trained = state
    pool = pool_by_address(settings.pools[0])
    s = episode_settings(settings, "evaluation", seed)
    indices = range(first_index, first_index + episodes)
    snapshots = await seeded_mock_phase_snapshots(
        settings, seed, pool, s.lookback_hours, clock, {phase_of(i) for i in indices}
    )
    env = mock_env(settings)
    report = await asyncio.to_thread(
        lambda: evaluate_paired(
            s,
            pool,
            lambda index: snapshots[phase_of(index)],
            trained,
            episodes=episodes,
            first_index=first_index,
            baseline_width_pct=baseline_width_pct,
            env=env,
        )
    )
    diff = report.difference["reward"]
    log.info(
        "evaluation_done",
        seed=seed,
        episodes=episodes,
        first_index=first_index,
        regimes=report.regimes,
        agent_version=report.agent_version,
        reward_learned=round(report.learned["reward"].mean, 6),
        reward_baseline=round(report.baseline["reward"].mean, 6),
        reward_difference=round(diff.mean, 6),
        difference_ci=[diff.low, diff.high],
    )
    return report


@dataclass(frozen=True)
class TrainingEvaluation:
    """What :func:`train_then_evaluate` did: the training campaign, the held-out evaluation and
    where the trained state was saved."""

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
        campaign = await run_campaign(
            settings,
            env=mock_env(settings),
            intel=stack.intel,
            episodes=train_episodes,
            clock=clock,
            agent=agent,
            phases=MockMarketPhases(stack.cache, stack.registry, clock, list(settings.pools), seed),
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
    if interval.degenerate:
        return f"{interval.mean:.{digits}f} (all {interval.n} equal)"
    if interval.low is None or interval.high is None:
        return f"{interval.mean:.{digits}f}"
    mark = "‡" if interval.clipped else ""
    return (
        f"{interval.mean:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]{mark}"
    )


def _term(value: float) -> str:
    """A term after an operator: negative values in parentheses (``− (−22.85)``)."""
    return f"({value:,.2f})" if value < 0 else f"{value:,.2f}"


def format_report(report: EvaluationReport) -> str:
    """A plain-text table: per metric, both arms and the paired difference with 95 % CIs, then
    the PnL decomposition of each arm."""
    n = len(report.episodes)
    last = report.first_index + n - 1
    lines = [
        f"evaluation: seed {report.seed}, episodes {report.first_index}..{last} (n={n}), "
        f"pool {report.pool_address}",
        f"agent {report.agent_version}; market regimes (episodes) {report.regimes}",
        "learned widths by regime (ticks: episodes) "
        + "; ".join(f"{k}: {v}" for k, v in report.learned_widths_by_regime().items()),
        f"baseline: static ±{report.baseline_width_pct:g} % range, same size and risk scalar",
        "means with 95 % t confidence intervals; difference is paired, per episode",
        "",
        f"{'metric':<18} {'learned':<32} {'baseline':<32} learned - baseline",
    ]
    for metric in METRICS:
        digits = METRIC_SPECS[metric].digits
        diff = report.difference[metric]
        flag = "  *" if diff.excludes_zero else ""
        lines.append(
            f"{metric:<18} {_cell(report.learned[metric], digits):<32} "
            f"{_cell(report.baseline[metric], digits):<32} {_cell(diff, digits)}{flag}".rstrip()
        )
    lines += [
        "",
        "PnL decomposition, mean per episode (USD): PnL = HODL return − IL + fees − gas",
    ]
    for label, arm in (
        ("learned", report.learned),
        ("baseline", report.baseline),
        ("difference", report.difference),
    ):
        t = {m: arm[m].mean for m in METRICS}
        lines.append(
            f"  {label:<11} {t['pnl_usd']:>10,.2f} = {t['hodl_return_usd']:,.2f} "
            f"− {_term(t['il_usd'])} + {_term(t['fees_usd'])} − {_term(t['gas_cost_usd'])}"
        )
    lines += [
        "",
        "* the difference's 95 % interval excludes zero (never starred when every episode's",
        "  difference is the same: there is no spread to test)",
        "‡ interval clipped to the metric's possible range (time in range 0-100 %; fees, IL and",
        "  gas ≥ 0). Statistics use values rounded to the cent (0.01 % in range, 1e-4 reward).",
    ]
    return "\n".join(lines)


# The evaluation's pieces stay importable from here, where callers and tests have always
# found them.
__all__ = [
    "METRICS",
    "METRIC_SPECS",
    "ArmOutcome",
    "EvaluationReport",
    "Interval",
    "PairedEpisode",
    "TrainingEvaluation",
    "baseline_ticks",
    "evaluate",
    "evaluate_on_snapshot",
    "evaluate_paired",
    "format_report",
    "mean_interval",
    "paired_difference",
    "seeded_mock_phase_snapshots",
    "seeded_mock_snapshot",
    "seeded_mock_snapshots",
    "t_quantile_975",
    "train_then_evaluate",
]
