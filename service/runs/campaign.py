"""``clmmd campaign``: N episodes in one process, a bounded pool of episode tasks.

The campaign opens a run (run.json, an ``.active`` marker, the run's campaign.log), recovers
runs that earlier processes left unfinished, runs the episodes through a fixed number of worker
tasks, rewrites metrics_summary.json as episodes end, and reports where everything went.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog

from clmmd.agent.persistence import LearningAgent, PersistentAgent, default_state_path
from clmmd.agent.reward import RewardWeights
from clmmd.artifacts.base.clock import Clock, SystemClock, utc_iso
from clmmd.artifacts.layout import RunLayout, new_run_id
from clmmd.artifacts.models import RunInfo
from clmmd.artifacts.recovery import recover_all
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.artifacts.writer import TEMP_MARKER, fsync_dir, write_json_new
from clmmd.env.base import ClmmEnv, PoolSpec, pool_by_address
from clmmd.service.config import Settings
from clmmd.service.logging import SINKS
from clmmd.service.runs.runner import EpisodeRunner, EpisodeSettings, IntelReader
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


def episode_settings(settings: Settings, run_id: str, seed: int) -> EpisodeSettings:
    """The one place configuration turns into what episodes use (seed 004's lesson: a setting
    that is logged but never reaches its component; tests assert each one arrives)."""
    return EpisodeSettings(
        run_id=run_id,
        campaign_seed=seed,
        config_hash=settings.config_hash(),
        exec_mode=settings.exec_mode,
        learn_from_mock=settings.learn_from_mock,
        size_usd=settings.position_size_usd,
        horizon_hours=settings.horizon_hours,
        risk_scalar_override=settings.risk_scalar_override,
        risk_profile=dict(settings.risk_profile),
        fresh_pct_floor=settings.fresh_pct_floor,
        reward_weights=RewardWeights(**settings.reward_weights),
    )


def learning_enabled(settings: Settings) -> bool:
    """Whether episodes of this configuration may update the agent at all."""
    return settings.exec_mode == "real" or settings.learn_from_mock


def resolve_seed(settings: Settings) -> int:
    """The configured HB_SEED, or a random one (logged, so a run can be replayed)."""
    return settings.seed if settings.seed is not None else secrets.randbits(31)


def open_run_folder(
    settings: Settings,
    layout: RunLayout,
    seed: int,
    clock: Clock,
    agent_version: str,
    kind: Literal["campaign", "daemon"] = "campaign",
) -> None:
    """Create the run folder with its ``.active`` marker (our pid) and run.json (blocking).

    The folder is assembled under a hidden name and renamed into place, so another process's
    recovery never sees the run without its marker (and mistakes it for a dead one).
    """
    staging = layout.run_dir.with_name(f".{layout.run_id}{TEMP_MARKER}{os.getpid()}")
    (staging / "episodes").mkdir(parents=True)
    (staging / ".active").write_text(str(os.getpid()))
    info = RunInfo(
        run_id=layout.run_id,
        started_at=utc_iso(clock.now()),
        kind=kind,
        config_hash=settings.config_hash(),
        exec_mode=settings.exec_mode,
        seed=seed,
        agent_version=agent_version,
        pid=os.getpid(),
        config=settings.effective(),
    )
    write_json_new(staging / "run.json", info, durable=settings.durable_writes)
    staging.rename(layout.run_dir)
    if settings.durable_writes:
        fsync_dir(layout.run_dir.parent)


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
) -> CampaignReport:
    """Run one campaign to completion and return what happened.

    ``on_episode_done`` is called with each finished episode's record (progress display).
    """
    clock = clock or SystemClock()
    count = episodes if episodes is not None else settings.episodes
    if count < 1:
        raise CampaignError(f"episodes must be at least 1, got {count}")
    seed = resolve_seed(settings)
    pool = pool or pool_by_address(settings.pools[0])
    if agent is None:
        agent = await PersistentAgent.open(
            default_state_path(settings.data_dir), clock, durable=settings.durable_writes
        )
    data_dir = settings.data_dir
    try:
        recovered = await asyncio.to_thread(recover_all, data_dir, clock.now())
    except OSError as exc:
        raise CampaignError(f"cannot use data dir {data_dir}: {exc.strerror}") from exc
    if recovered.episodes_completed:
        log.warning("recovered_interrupted_episodes", episodes=recovered.episodes_completed)

    layout = RunLayout(data_dir, new_run_id(clock.now()))
    try:
        await asyncio.to_thread(
            open_run_folder, settings, layout, seed, clock, agent.state.agent_version
        )
    except OSError as exc:
        raise CampaignError(f"cannot create run folder under {data_dir}: {exc}") from exc
    SINKS.add_run(layout.run_id, layout.campaign_log)
    structlog.contextvars.bind_contextvars(run_id=layout.run_id)
    report = CampaignReport(layout.run_id, layout.run_dir, seed, count)
    try:
        log.info(
            "campaign_started",
            episodes=count,
            seed=seed,
            pool=pool.address,
            exec_mode=settings.exec_mode,
            config_hash=settings.config_hash(),
            config=settings.effective(),
            run_dir=str(layout.run_dir),
        )
        store = ArtifactStore(layout, durable=settings.durable_writes)
        runner = runner_factory(
            settings=episode_settings(settings, layout.run_id, seed),
            store=store,
            env=env,
            intel=intel,
            agent=agent,
            pool=pool,
            clock=clock,
        )
        workers = settings.episode_workers
        if learning_enabled(settings) and workers > 1:
            # Each episode proposes from the state the previous ones learned into; running them
            # concurrently would make the result depend on timing, not on the seed.
            log.info("learning_serialises_episodes", configured_workers=workers)
            workers = 1
        await _run_pool(runner, store, report, workers, clock, on_episode_done)
    finally:
        layout.active_marker.unlink(missing_ok=True)
        structlog.contextvars.unbind_contextvars("run_id")
    log.info(
        "campaign_finished",
        run_id=layout.run_id,
        run_dir=str(layout.run_dir),
        episodes=len(report.records),
        lost=len(report.lost),
        successful=sum(r.status == "success" for r in report.records),
        failed=sum(r.status == "failed" for r in report.records),
    )
    SINKS.remove_run(layout.run_id)
    return report


async def _run_pool(
    runner: EpisodeRunner,
    store: ArtifactStore,
    report: CampaignReport,
    workers: int,
    clock: Clock,
    on_episode_done: Callable[[EpisodeRecord], None] | None = None,
) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(1, report.requested + 1):
        queue.put_nowait(index)
    summary = SummaryWriter(store, clock)

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
        for i in range(min(workers, report.requested))
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        await summary.close()
