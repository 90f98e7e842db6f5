"""``clmmd sweep``: a grid of (pool, arm, seed) evaluations, run anywhere, written here.

The head (this process) takes every (pool, seed) intel snapshot (the seeded mock intel, as
``clmmd evaluate``), reads the agent's state, cuts the grid into batches
(:mod:`service.analysis.sweep_grid`) and hands them to an executor (in-process or Ray tasks,
:mod:`service.analysis.sweep_exec`). It alone writes: one run folder (``kind`` ``sweep``) in
the usual layout, one episode folder per evaluation in grid order (proposal.json,
result.json, reward.json, metadata.json, logs.jsonl; no timings.json: the head does not time
episodes it did not run), metrics_summary.json and ``sweep.json``: the grid, every
evaluation's cell and reward, and per cell the mean with its 95 % interval. The results are
the same bytes whichever executor ran the batches (``execution`` in sweep.json, the only
part that differs, records how they ran).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import structlog

from clmmd.agent.learner import LearningDecision
from clmmd.agent.persistence import default_state_path, read_state
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import Clock, utc_iso
from clmmd.artifacts.layout import RunLayout, new_run_id
from clmmd.artifacts.models import LogLine
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import summarize_folders
from clmmd.artifacts.writer import replace_json
from clmmd.env.base import PoolSpec
from clmmd.env.history import HistoryError
from clmmd.scheduler.intel import IntelSnapshot
from clmmd.service.analysis.evaluation import seeded_mock_snapshots
from clmmd.service.analysis.evaluation_stats import Interval, mean_interval
from clmmd.service.analysis.sweep_exec import BatchExecutor, ExecutionStats
from clmmd.service.analysis.sweep_grid import (
    Arm,
    Evaluation,
    MarketSnapshot,
    SweepContext,
    SweepMarket,
    make_batches,
)
from clmmd.service.analysis.sweep_report import SWEEP_FILE, table_rows
from clmmd.service.config import ConfigError, Settings
from clmmd.service.market import check_replay_history, load_replay_market
from clmmd.service.runs import builders
from clmmd.service.runs.context import EpisodeSettings, market_view
from clmmd.service.runs.opening import episode_settings, open_run_folder
from clmmd.service.runs.warmup import phase_of

log = structlog.get_logger(__name__)

SWEEP_FORMAT_VERSION = 1
#: Tasks per worker when no batch size is given: enough to balance uneven workers, few
#: enough that the per-task overhead stays small against the work.
TASKS_PER_WORKER = 4
#: The smallest default task: a task costs Ray ~5-10 ms of CPU all told (submitting,
#: scheduling, storing its result; bench/sweep_speed.py), against ~0.2 ms per synthetic
#: evaluation, so 500 keep that under ~10 % of the work. Small grids get fewer tasks.
MIN_BATCH = 500
_NOT_LEARNING = LearningDecision(False, "gate: sweep evaluations never learn")


@dataclass(frozen=True)
class SweepGrid:
    pools: tuple[PoolSpec, ...]
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    episodes: int

    @property
    def size(self) -> int:
        return len(self.pools) * len(self.arms) * len(self.seeds) * self.episodes


@dataclass(frozen=True)
class CellSummary:
    pool_address: str
    arm: str
    seed: int | None  # None: all seeds of the pool pooled
    reward: Interval
    pnl_usd: float
    fees_usd: float
    time_in_range_pct: float


@dataclass(frozen=True)
class SweepResult:
    layout: RunLayout
    grid: SweepGrid
    cells: list[CellSummary]
    stats: ExecutionStats


def default_batch_size(total: int, workers: int) -> int:
    """Items per task: the grid over ``TASKS_PER_WORKER`` tasks per worker, but no fewer than
    ``MIN_BATCH`` unless that leaves a worker idle (at least 1)."""
    even = -(-total // (TASKS_PER_WORKER * max(workers, 1)))
    per_worker = -(-total // max(workers, 1))
    return max(1, min(max(even, MIN_BATCH), per_worker))


def summarize_cells(grid: SweepGrid, evaluations: Sequence[Evaluation]) -> list[CellSummary]:
    """Per (pool, arm, seed) and per (pool, arm) over all seeds: mean reward with its 95 %
    interval, mean PnL, fees and time in range (pure)."""
    groups: dict[tuple[str, str, int | None], list[Evaluation]] = {}
    for e in evaluations:
        for seed in (e.seed, None):
            groups.setdefault((e.pool_address, e.arm.label, seed), []).append(e)
    cells = []
    for pool in grid.pools:
        for arm in grid.arms:
            for seed in (*grid.seeds, None):
                group = groups.get((pool.address, arm.label, seed), [])
                if not group:
                    continue
                n = len(group)
                cells.append(
                    CellSummary(
                        pool_address=pool.address,
                        arm=arm.label,
                        seed=seed,
                        reward=mean_interval([e.reward.total for e in group]),
                        pnl_usd=sum(e.outcome.pnl_usd for e in group) / n,
                        fees_usd=sum(e.outcome.fees_usd for e in group) / n,
                        time_in_range_pct=sum(e.outcome.time_in_range_pct for e in group) / n,
                    )
                )
    return cells


def _write_episodes(
    store: ArtifactStore,
    evaluations: Sequence[Evaluation],
    snapshots: dict[tuple[str, int, int], IntelSnapshot],
    settings: Settings,
    now: datetime,
) -> None:
    when = utc_iso(now)
    config_hash = settings.config_hash()
    for e in evaluations:
        eid = e.proposal.episode_id
        store.create_episode(eid, e.proposal)
        result = builders.success_result(e.outcome, "mock", {})
        metadata = builders.metadata(
            run_id=store.layout.run_id,
            episode_id=eid,
            agent_version=e.proposal.agent_version or "",
            config_hash=config_hash,
            exec_mode="mock",
            started=now,
            proposal=e.proposal,
            seed=e.episode_seed,
            learning=_NOT_LEARNING,
            health=None,
            intel_extra=snapshots[(e.pool_address, e.seed, phase_of(e.index))].as_metadata_extra(),
        )
        cell = {"pool": e.pool_address, "arm": e.arm.label, "seed": e.seed, "index": e.index}
        store.write_batch(
            eid,
            [LogLine(ts=when, event="sweep_evaluated", payload=cell)],
            [("result.json", result), ("reward.json", e.reward), ("metadata.json", metadata)],
        )


def cells_json(cells: Sequence[CellSummary]) -> list[dict[str, Any]]:
    """The cells as sweep.json holds them (what the report's table and heatmap read)."""
    return [
        {
            "pool": c.pool_address,
            "arm": c.arm,
            "seed": c.seed,
            "n": c.reward.n,
            "reward_mean": c.reward.mean,
            "reward_low": c.reward.low,
            "reward_high": c.reward.high,
            "pnl_usd_mean": c.pnl_usd,
            "fees_usd_mean": c.fees_usd,
            "time_in_range_pct_mean": c.time_in_range_pct,
        }
        for c in cells
    ]


def format_table(result: SweepResult) -> str:
    """What ``clmmd sweep`` prints: per pool and arm over all seeds, how it ran, and where."""
    pooled = [c for c in cells_json(result.cells) if c["seed"] is None]
    g, s = result.grid, result.stats
    lines = [
        f"sweep {result.layout.run_id}: {g.size} evaluations ({len(g.pools)} pools × "
        f"{len(g.arms)} arms × {len(g.seeds)} seeds × {g.episodes} episodes)",
        f"{'pool':<14} {'arm':<8} {'n':>5}  reward (mean [95 % interval], % of size)",
    ]
    for pool, arm, _, n, reward in table_rows(pooled):
        lines.append(f"{pool:<14} {arm:<8} {n:>5}  {reward}")
    lines.append(
        f"ran on {s.executor} ({s.workers} workers, {s.tasks} tasks): {s.wall_s:.2f} s, "
        f"overhead {s.overhead_per_task_ms:.1f} ms per task; report: clmmd report "
        f"{result.layout.run_id}"
    )
    return "\n".join(lines)


def sweep_document(
    run_id: str,
    grid: SweepGrid,
    evaluations: Sequence[Evaluation],
    cells: Sequence[CellSummary],
    stats: ExecutionStats,
) -> dict[str, Any]:
    """sweep.json: ``grid``, ``evaluations`` and ``cells`` are the results (the same bytes
    whichever executor ran); ``execution`` is how it ran."""
    return {
        "format": "clmmd-sweep",
        "format_version": SWEEP_FORMAT_VERSION,
        "run_id": run_id,
        "grid": {
            "pools": [p.address for p in grid.pools],
            "arms": [a.label for a in grid.arms],
            "seeds": list(grid.seeds),
            "episodes": grid.episodes,
            "evaluations": grid.size,
        },
        "evaluations": [
            {
                "episode_id": e.proposal.episode_id,
                "pool": e.pool_address,
                "arm": e.arm.label,
                "seed": e.seed,
                "index": e.index,
                "episode_seed": e.episode_seed,
                "width_ticks": e.proposal.action.width_ticks if e.proposal.action else None,
                "reward": e.reward.total,
            }
            for e in evaluations
        ],
        "cells": cells_json(cells),
        "execution": {**asdict(stats), "overhead_per_task_ms": stats.overhead_per_task_ms},
    }


async def grid_intel(
    settings: Settings,
    pools: Sequence[PoolSpec],
    seeds: Sequence[int],
    episodes: int,
    lookback_hours: float,
    clock: Clock,
) -> dict[tuple[str, int, int], IntelSnapshot]:
    """The intel snapshot of every (pool address, seed, market phase) the grid's episodes
    reach, as the evaluation takes them."""
    intel: dict[tuple[str, int, int], IntelSnapshot] = {}
    for seed in seeds:
        for phase in range(phase_of(episodes) + 1):
            by_pool = await seeded_mock_snapshots(
                settings, seed, list(pools), lookback_hours, clock, phase
            )
            for pool in pools:
                intel[(pool.address, seed, phase)] = by_pool[pool.address]
    return intel


def market_snapshots(
    pools: Sequence[PoolSpec],
    seeds: Sequence[int],
    episodes: int,
    intel: dict[tuple[str, int, int], IntelSnapshot],
) -> list[MarketSnapshot]:
    """What the tasks carry of ``intel``: one snapshot per (pool, seed) in grid order (pool,
    then seed), holding every market phase."""
    phases = range(phase_of(episodes) + 1)
    snapshots: list[MarketSnapshot] = []
    for pool in pools:
        for seed in seeds:
            first, *rest = (intel[(pool.address, seed, phase)] for phase in phases)
            snapshots.append(
                MarketSnapshot(
                    pool,
                    seed,
                    first.market_inputs(),
                    market_view(first),
                    tuple((snap.market_inputs(), market_view(snap)) for snap in rest),
                )
            )
    return snapshots


def sweep_market(settings: Settings, pools: Sequence[PoolSpec]) -> SweepMarket:
    """The market the sweep's episodes run in, as ``CLMMD_MARKET`` says: the synthetic one,
    or each pool's replayed history (``CLMMD_REPLAY_HISTORY``, else ``<data_dir>/history``),
    read and prepared here once for all the tasks (blocking: run it in a worker thread).
    ``ConfigError`` (one line) when a pool has no history."""
    if settings.market == "synthetic":
        return SweepMarket()
    for pool in pools:
        check_replay_history(settings, pool)
    try:
        return SweepMarket(tuple(load_replay_market(settings, pool) for pool in pools))
    except HistoryError as exc:
        raise ConfigError(f"invalid configuration: CLMMD_MARKET='replay': {exc}") from None


async def sweep_context(
    settings: Settings,
    grid: SweepGrid,
    episode: EpisodeSettings,
    state: AgentState,
    clock: Clock,
) -> tuple[dict[tuple[str, int, int], IntelSnapshot], SweepContext]:
    """What the grid's tasks share, for either market (the one place that builds it, for
    ``clmmd sweep`` and ``bench/sweep_speed.py``), and the intel snapshots the head records
    in each episode's metadata."""
    market = await asyncio.to_thread(sweep_market, settings, grid.pools)
    intel = await grid_intel(
        settings, grid.pools, grid.seeds, grid.episodes, episode.lookback_hours, clock
    )
    snapshots = market_snapshots(grid.pools, grid.seeds, grid.episodes, intel)
    return intel, SweepContext(episode, state, tuple(snapshots), grid.arms, grid.episodes, market)


async def run_sweep(
    settings: Settings,
    grid: SweepGrid,
    executor: BatchExecutor,
    clock: Clock,
    *,
    batch_size: int | None = None,
    state: AgentState | None = None,
    run_id: str | None = None,
) -> SweepResult:
    """Evaluate ``grid`` on ``executor`` and write the sweep's run folder (see the module
    docstring). ``state`` None reads ``<data_dir>/agent/state.json`` (the prior when absent)."""
    if grid.size == 0:
        raise ValueError("the grid is empty")
    if state is None:
        path = default_state_path(settings.data_dir)
        state = await asyncio.to_thread(read_state, path) or AgentState()
    s = episode_settings(settings, run_id or new_run_id(clock.now()), grid.seeds[0])
    intel, context = await sweep_context(settings, grid, s, state, clock)
    workers = await asyncio.to_thread(executor.workers)
    size = batch_size or default_batch_size(grid.size, workers)
    batches = make_batches(grid.size, size)
    log.info(
        "sweep_started",
        evaluations=grid.size,
        tasks=len(batches),
        executor=executor.name,
        workers=workers,
        market=settings.market,
    )
    results, stats = await asyncio.to_thread(executor.run, context, batches)
    evaluations = [e for result in results for e in result.evaluations(context)]
    cells = summarize_cells(grid, evaluations)
    layout = RunLayout(settings.data_dir, s.run_id)
    await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(
        open_run_folder, settings, layout, grid.seeds[0], clock, state.agent_version, "sweep"
    )
    store = ArtifactStore(layout, durable=settings.durable_writes)
    await asyncio.to_thread(_write_episodes, store, evaluations, intel, settings, clock.now())
    summary = await asyncio.to_thread(summarize_folders, layout, clock.now())
    await asyncio.to_thread(store.write_summary, summary)
    document = sweep_document(layout.run_id, grid, evaluations, cells, stats)
    await asyncio.to_thread(
        replace_json, layout.run_dir / SWEEP_FILE, document, durable=settings.durable_writes
    )
    # Only a complete run loses its marker: if writing failed half-way, the next start's
    # recovery finds the marker of a dead writer and completes the episodes left open.
    await asyncio.to_thread(layout.active_marker.unlink, True)
    log.info(
        "sweep_done",
        evaluations=len(evaluations),
        wall_s=round(stats.wall_s, 3),
        overhead_per_task_ms=round(stats.overhead_per_task_ms, 3),
    )
    return SweepResult(layout, grid, cells, stats)
