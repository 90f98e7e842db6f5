"""``clmmd campaign``: N episodes in one process, a bounded pool of episode tasks.

The campaign opens a run (run.json, an ``.active`` marker, the run's campaign.log), recovers
runs that earlier processes left unfinished, runs the episodes through a fixed number of worker
tasks, rewrites metrics_summary.json as episodes end, and reports where everything went.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from clmmd.agent.persistence import LearningAgent
from clmmd.artifacts.base.clock import Clock, SystemClock
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.env.base import ClmmEnv, PoolSpec, pool_by_address
from clmmd.service.config import Settings
from clmmd.service.runs.opening import RunOpenError, close_run, learning_enabled, open_run
from clmmd.service.runs.runner import EpisodeRunner, IntelReader
from clmmd.service.runs.summary_writer import SummaryWriter

log = structlog.get_logger(__name__)


@dataclass
class CampaignReport:
    run_id: str
    run_dir: Path
    seed: int
    requested: int
    records: list[EpisodeRecord] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every requested episode ended with an artifact folder."""
        return not self.lost and len(self.records) == self.requested


class CampaignError(Exception):
    """The campaign itself could not run (not an episode failure)."""


class IntelPhases(Protocol):
    """Moves the intel on between phases of a campaign (the mock market's regimes):
    ``await phases(p)`` before the episodes of phase ``p`` start."""

    episodes_per_phase: int

    async def __call__(self, phase: int) -> object: ...


async def run_campaign(
    settings: Settings,
    *,
    env: ClmmEnv,
    intel: IntelReader,
    episodes: int | None = None,
    clock: Clock | None = None,
    agent: LearningAgent | None = None,
    pool: PoolSpec | None = None,
    runner_factory: Callable[..., EpisodeRunner] = EpisodeRunner,
    on_episode_done: Callable[[EpisodeRecord], None] | None = None,
    phases: IntelPhases | None = None,
) -> CampaignReport:
    """Run one campaign to completion and return what happened.

    ``on_episode_done`` is called with each finished episode's record (progress display).
    With ``phases``, episodes run in phases of ``phases.episodes_per_phase``: each phase's
    intel is prepared before any of its episodes starts and after every episode of the previous
    phase has ended, so what an episode sees depends on its index only, not on timing.
    """
    clock = clock or SystemClock()
    count = episodes if episodes is not None else settings.episodes
    if count < 1:
        raise CampaignError(f"episodes must be at least 1, got {count}")
    pool = pool or pool_by_address(settings.pools[0])
    try:
        run = await open_run(
            settings,
            "campaign",
            env=env,
            intel=intel,
            clock=clock,
            agent=agent,
            pool=pool,
            runner_factory=runner_factory,
        )
    except RunOpenError as exc:
        raise CampaignError(str(exc)) from exc
    report = CampaignReport(run.run_id, run.layout.run_dir, run.seed, count)
    try:
        log.info(
            "campaign_started",
            episodes=count,
            seed=run.seed,
            pool=pool.address,
            exec_mode=settings.exec_mode,
            config_hash=settings.config_hash(),
            config=settings.effective(),
            run_dir=str(run.layout.run_dir),
        )
        workers = settings.episode_workers
        if learning_enabled(settings) and workers > 1:
            # Each episode proposes from the state the previous ones learned into; running them
            # concurrently would make the result depend on timing, not on the seed.
            log.info("learning_serialises_episodes", configured_workers=workers)
            workers = 1
        await _run_pool(run.runner, run.store, report, workers, clock, on_episode_done, phases)
        log.info(
            "campaign_finished",
            run_id=run.run_id,
            run_dir=str(run.layout.run_dir),
            episodes=len(report.records),
            lost=len(report.lost),
            successful=sum(r.status == "success" for r in report.records),
            failed=sum(r.status == "failed" for r in report.records),
        )
    finally:
        close_run(run)
    return report


async def _run_pool(
    runner: EpisodeRunner,
    store: ArtifactStore,
    report: CampaignReport,
    workers: int,
    clock: Clock,
    on_episode_done: Callable[[EpisodeRecord], None] | None = None,
    phases: IntelPhases | None = None,
) -> None:
    summary = SummaryWriter(store, clock)
    per_phase = phases.episodes_per_phase if phases is not None else report.requested
    try:
        for start in range(1, report.requested + 1, per_phase):
            if phases is not None:
                phase = (start - 1) // per_phase
                try:
                    await phases(phase)
                except Exception as exc:  # the episodes still run, on the previous intel
                    log.warning(
                        "intel_phase_failed",
                        phase=phase,
                        error=f"{type(exc).__name__}: {exc}",
                        hint="check disk space and permissions of <data_dir>/cache",
                    )
            indices = range(start, min(start + per_phase, report.requested + 1))
            await _run_batch(runner, indices, workers, report, summary, on_episode_done)
    finally:
        await summary.close()


async def _run_batch(
    runner: EpisodeRunner,
    indices: Sequence[int],
    workers: int,
    report: CampaignReport,
    summary: SummaryWriter,
    on_episode_done: Callable[[EpisodeRecord], None] | None,
) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in indices:
        queue.put_nowait(index)

    async def worker() -> None:
        while True:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                record = await runner.run(index)
            except Exception as exc:  # not even a folder: the episode is lost
                log.error(
                    "episode_lost",
                    index=index,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    hint="check disk space and permissions of the data dir",
                )
                report.lost.append(f"episode {index}: {type(exc).__name__}: {exc}")
                continue
            report.records.append(record)
            if on_episode_done is not None:
                try:
                    on_episode_done(record)
                except Exception as exc:  # a display must never stop the campaign
                    log.warning("progress_callback_failed", error=f"{type(exc).__name__}: {exc}")
            summary.add(record)

    tasks = [
        asyncio.create_task(worker(), name=f"episode-worker-{i}")
        for i in range(min(workers, len(indices)))
    ]
    await asyncio.gather(*tasks)
