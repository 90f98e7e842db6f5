"""``clmmd campaign``: N episodes in one process, a bounded pool of episode tasks.

The campaign opens a run (run.json, an ``.active`` marker, the run's campaign.log), recovers
runs that earlier processes left unfinished, runs the episodes through a fixed number of worker
tasks, rewrites metrics_summary.json as episodes end, and reports where everything went.

A campaign whose episodes learn owns the data dir for its duration (``service.datadir_lock``):
two learners would overwrite each other's agent state.

Interrupted (``stop`` set, e.g. by Ctrl-C or SIGTERM, or by three episodes in a row lost to a
full disk): no new episode starts; running ones get
the drain deadline (``CLMMD_DRAIN_TIMEOUT_S``; ``hurry`` set: none) to finish, the others are
cancelled and their folders completed as ``interrupted``; the summary is final and the report
says what happened (``interrupted_by``, ``not_started``, ``interrupted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from clmmd.agent.persistence import LearningAgent
from clmmd.artifacts.base.clock import Clock, SystemClock
from clmmd.artifacts.base.waiting import first_of
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.env.base import ClmmEnv, PoolSpec, pool_by_address
from clmmd.service.config import Settings
from clmmd.service.datadir_lock import DataDirLock
from clmmd.service.runs.losses import describe, lost_reason
from clmmd.service.runs.opening import (
    RunOpenError,
    close_run,
    complete_interrupted,
    learning_enabled,
    open_run,
)
from clmmd.service.runs.runner import EpisodeRunner, IntelReader
from clmmd.service.runs.summary_writer import SummaryWriter
from clmmd.service.runs.writer_processes import WriterProcesses

log = structlog.get_logger(__name__)

#: Episodes lost to a full disk in a row after which a campaign stops taking new ones.
DISK_FULL_STOP_AFTER = 3
DISK_FULL = "a full disk (three episodes in a row could not be written)"


@dataclass
class CampaignReport:
    run_id: str
    run_dir: Path
    seed: int
    requested: int
    records: list[EpisodeRecord] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    #: Set when the campaign was stopped early: what stopped it (e.g. ``SIGINT``).
    interrupted_by: str | None = None
    #: Episodes cut short by the stop and completed as ``interrupted`` (``run_id/episode``).
    interrupted: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every requested episode ended with an artifact folder."""
        return not self.lost and len(self.records) == self.requested

    @property
    def not_started(self) -> int:
        """Episodes never begun (a stop came first)."""
        return max(0, self.requested - len(self.records) - len(self.lost) - len(self.interrupted))


@dataclass
class CampaignStop:
    """How a campaign is asked to stop early: ``stop`` (finish running episodes within the
    drain deadline), then ``hurry`` (no more waiting). ``reason`` names the cause."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    hurry: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None

    def request(self, reason: str) -> None:
        """First call: stop; later calls: hurry."""
        if self.stop.is_set():
            self.hurry.set()
            return
        self.reason = reason
        self.stop.set()


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
    stop: CampaignStop | None = None,
    phases: IntelPhases | None = None,
) -> CampaignReport:
    """Run one campaign to completion (or until ``stop``) and return what happened.

    ``on_episode_done`` is called with each finished episode's record (progress display).
    With ``phases``, episodes run in phases of ``phases.episodes_per_phase``: each phase's
    intel is prepared before any of its episodes starts and after every episode of the previous
    phase has ended, so what an episode sees depends on its index only, not on timing.
    Raises :class:`service.datadir_lock.DataDirBusy` when the episodes learn and another process
    owns the data dir.
    """
    clock = clock or SystemClock()
    count = episodes if episodes is not None else settings.episodes
    if count < 1:
        raise CampaignError(f"episodes must be at least 1, got {count}")
    pool = pool or pool_by_address(settings.pools[0])
    lock = None
    if learning_enabled(settings):
        lock = await asyncio.to_thread(
            DataDirLock.acquire, settings.data_dir, "campaign (learning)", clock.now()
        )
    try:
        return await _campaign(
            settings,
            env=env,
            intel=intel,
            count=count,
            clock=clock,
            agent=agent,
            pool=pool,
            runner_factory=runner_factory,
            on_episode_done=on_episode_done,
            stop=stop or CampaignStop(),
            phases=phases,
        )
    finally:
        if lock is not None:
            lock.release()


#: A durable campaign of at least this many episodes writes in writer processes, a shorter one
#: in threads. Starting the writers (one interpreter, 60-70 ms here) made a 1-episode campaign
#: ten times slower and an 8-episode one three times; from about a hundred episodes they pay.
WRITER_PROCESSES_FROM = 100


async def _campaign(
    settings: Settings,
    *,
    env: ClmmEnv,
    intel: IntelReader,
    count: int,
    clock: Clock,
    agent: LearningAgent | None,
    pool: PoolSpec,
    runner_factory: Callable[..., EpisodeRunner],
    on_episode_done: Callable[[EpisodeRecord], None] | None,
    stop: CampaignStop,
    phases: IntelPhases | None,
) -> CampaignReport:
    workers = settings.episode_workers
    if learning_enabled(settings) and workers > 1:
        # Each episode proposes from the state the previous ones learned into; running them
        # concurrently would make the result depend on timing, not on the seed.
        log.info("learning_serialises_episodes", configured_workers=workers)
        workers = 1
    # Durable writes keep their pace only outside this process's GIL (writer_processes); a
    # short campaign would be over before the writers are up, and wait for their start.
    use_writers = settings.durable_writes and count >= WRITER_PROCESSES_FROM
    writers = WriterProcesses(workers) if use_writers else None
    if writers is not None:
        writers.start()
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
            writers=writers,
        )
    except BaseException as exc:
        if writers is not None:
            await writers.close()
        if isinstance(exc, RunOpenError):
            raise CampaignError(str(exc)) from exc
        raise
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
        await _run_pool(
            run.runner, run.store, report, workers, clock, on_episode_done, stop, settings, phases
        )
        if stop.stop.is_set():
            report.interrupted_by = stop.reason or "stop requested"
            report.interrupted = await complete_interrupted(run.layout, clock)
        log.info(
            "campaign_finished" if report.interrupted_by is None else "campaign_interrupted",
            run_id=run.run_id,
            run_dir=str(run.layout.run_dir),
            episodes=len(report.records),
            lost=len(report.lost),
            successful=sum(r.status == "success" for r in report.records),
            failed=sum(r.status == "failed" for r in report.records),
            interrupted_by=report.interrupted_by,
            interrupted=len(report.interrupted),
            not_started=report.not_started,
        )
    finally:
        try:
            if writers is not None:  # every write has landed: the processes just exit
                await writers.close()
        finally:
            close_run(run)
    return report


async def _run_pool(
    runner: EpisodeRunner,
    store: ArtifactStore,
    report: CampaignReport,
    workers: int,
    clock: Clock,
    on_episode_done: Callable[[EpisodeRecord], None] | None,
    stop: CampaignStop,
    settings: Settings,
    phases: IntelPhases | None,
) -> None:
    summary = SummaryWriter(store, clock)
    per_phase = phases.episodes_per_phase if phases is not None else report.requested
    streak = _DiskFullStreak()
    try:
        for start in range(1, report.requested + 1, per_phase):
            if stop.stop.is_set():
                break
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
            batch = _Batch(runner, report, summary, on_episode_done, stop, streak)
            await batch.run(indices, workers, settings.drain_timeout_s, clock)
    finally:
        await summary.close()


@dataclass
class _DiskFullStreak:
    """Episodes lost to a full disk in a row, across phases."""

    count: int = 0


@dataclass
class _Batch:
    """One phase's episodes through ``workers`` worker tasks.

    With durable writes a worker computes its next episode while the previous one's last
    files land (fsync): it hands the write over (:meth:`EpisodeRunner.start`) and waits for it
    only before starting the episode after, so each worker has at most one episode finishing on
    disk besides the one it computes. An episode counts (report, progress, summary) only once
    its files are written. Episodes finishing on disk are never cancelled (nothing is left of
    them but a write that runs to its end anyway): a stop waits for them. Without fsync the
    last write takes microseconds on the io lane: a worker runs its episodes one by one.
    """

    runner: EpisodeRunner
    report: CampaignReport
    summary: SummaryWriter
    on_episode_done: Callable[[EpisodeRecord], None] | None
    stop: CampaignStop
    streak: _DiskFullStreak
    finishing: set[asyncio.Task[EpisodeRecord]] = field(default_factory=set)

    async def run(self, indices: Sequence[int], workers: int, drain_s: float, clock: Clock) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in indices:
            queue.put_nowait(index)
        tasks = [
            asyncio.create_task(self._worker(queue), name=f"episode-worker-{i}")
            for i in range(min(workers, len(indices)))
        ]
        try:
            await _until_done_or_stopped(tasks, self.stop, drain_s, clock)
        finally:
            if self.finishing:
                await asyncio.wait(list(self.finishing))

    async def _worker(self, queue: asyncio.Queue[int]) -> None:
        previous: asyncio.Task[EpisodeRecord] | None = None
        while not self.stop.stop.is_set():
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if not self.runner.store.durable:
                try:
                    record = await self.runner.run(index)
                except Exception as exc:
                    self._count(index, exc)
                else:
                    self._count(index, record)
                continue
            episode = await self.runner.start(index)
            if episode.done():  # lost (no folder): counted now, so a full disk stops at once
                self._ended(index, episode)
                continue
            self.finishing.add(episode)
            episode.add_done_callback(functools.partial(self._ended, index))
            if previous is not None:
                await asyncio.wait([previous])
            previous = episode
        if previous is not None:
            await asyncio.wait([previous])

    def _ended(self, index: int, episode: asyncio.Task[EpisodeRecord]) -> None:
        """Count an episode whose last write is done (a done callback: runs on the loop)."""
        self.finishing.discard(episode)
        if episode.cancelled():  # cut short by a stop: recovery completes its folder
            return
        exc = episode.exception()
        self._count(index, episode.result() if exc is None else exc)

    def _count(self, index: int, outcome: EpisodeRecord | BaseException) -> None:
        if isinstance(outcome, BaseException):  # not even a folder: the episode is lost
            exc = outcome
            log.error(
                "episode_lost",
                index=index,
                error_type=type(exc).__name__,
                error=str(exc),
                hint="check disk space and permissions of the data dir",
            )
            self.report.lost.append(f"episode {index}: {describe(exc)}")
            full = lost_reason(exc) == "disk_full"
            self.streak.count = self.streak.count + 1 if full else 0
            if self.streak.count >= DISK_FULL_STOP_AFTER:
                self.stop.request(DISK_FULL)  # every further episode would be lost too
            return
        record = outcome
        self.streak.count = 0
        self.report.records.append(record)
        if self.on_episode_done is not None:
            try:
                self.on_episode_done(record)
            except Exception as exc:  # a display must never stop the campaign
                log.warning("progress_callback_failed", error=f"{type(exc).__name__}: {exc}")
        self.summary.add(record)


async def _until_done_or_stopped(
    tasks: list[asyncio.Task[None]], stop: CampaignStop, drain_s: float, clock: Clock
) -> None:
    """Wait for the workers; once ``stop`` is set give them ``drain_s`` (or until ``hurry``)
    to finish their episode, then cancel them (the episode's folder is completed later)."""
    everything = asyncio.gather(*tasks)
    try:
        if await _first(everything, stop.stop.wait()):
            everything.result()  # a worker's own bug surfaces here
            return
        log.warning("campaign_stopping", reason=stop.reason, drain_timeout_s=drain_s)
        await _first(everything, clock.sleep(drain_s), stop.hurry.wait())
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if not everything.done():
            everything.cancel()
        with contextlib.suppress(BaseException):
            everything.exception()


async def _first(main: asyncio.Future[Any], *others: Coroutine[Any, Any, Any]) -> bool:
    """Wait until ``main`` or one of ``others`` is done (``main`` goes on); True when ``main``
    is done."""
    await first_of(asyncio.shield(main), *others)
    return main.done()
