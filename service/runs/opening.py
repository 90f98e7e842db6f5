"""Opening and closing a run: the one way a campaign and the daemon start writing episodes.

A run is a folder under ``runs/`` with run.json, an ``.active`` marker holding the writer's pid
and its own campaign.log; while it is open, every log line carries its ``run_id``. Runs an
earlier process left unfinished are recovered first. Closing removes the marker and the run's
log sink. Both ``clmmd campaign`` and ``clmmd run`` go through :func:`open_run`, so neither can
forget a step (the daemon once forgot to bind ``run_id``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from clmmd.agent.persistence import LearningAgent, PersistentAgent, default_state_path
from clmmd.agent.reward import RewardWeights
from clmmd.artifacts.base.clock import Clock, utc_iso
from clmmd.artifacts.layout import RunLayout, new_run_id
from clmmd.artifacts.models import RunInfo
from clmmd.artifacts.recovery import RecoveryReport, recover_all, recover_run
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.writer import TEMP_MARKER, fsync_dir, write_json_new
from clmmd.env.base import ClmmEnv, PoolSpec, pool_by_address
from clmmd.service.config import Settings
from clmmd.service.logging import SINKS
from clmmd.service.runs.runner import EpisodeRunner, EpisodeSettings, IntelReader
from clmmd.service.runs.writer_processes import WriterProcesses

log = structlog.get_logger(__name__)

RunKind = Literal["campaign", "daemon", "sweep"]


class RunOpenError(Exception):
    """The run could not be opened (data dir unusable); nothing was started."""


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
    kind: RunKind = "campaign",
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


@dataclass
class OpenRun:
    """A run being written: its folder, seed, store and the runner that fills it."""

    kind: RunKind
    layout: RunLayout
    seed: int
    store: ArtifactStore
    runner: EpisodeRunner
    agent: LearningAgent

    @property
    def run_id(self) -> str:
        return self.layout.run_id


async def open_run(
    settings: Settings,
    kind: RunKind,
    *,
    env: ClmmEnv,
    intel: IntelReader,
    clock: Clock,
    agent: LearningAgent | None = None,
    pool: PoolSpec | None = None,
    runner_factory: Callable[..., EpisodeRunner] = EpisodeRunner,
    writers: WriterProcesses | None = None,
) -> OpenRun:
    """Recover what dead writers left, then create the run folder, bind ``run_id`` to every
    log line of this context, attach the run's campaign.log and build its episode runner.

    ``writers`` (a durable campaign's writer processes) apply the episodes' writes.
    Raises :class:`RunOpenError` (nothing opened) when the data dir cannot be used."""
    data_dir = settings.data_dir
    try:
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        recovered = await asyncio.to_thread(recover_all, data_dir, clock.now())
    except OSError as exc:
        raise RunOpenError(f"cannot use data dir {data_dir}: {exc.strerror or exc}") from exc
    if recovered.episodes_completed:
        log.warning("recovered_interrupted_episodes", episodes=recovered.episodes_completed)
    if env.name == "real":
        # Positions interrupted episodes left on chain are settled before anything new opens.
        from clmmd.service.runs.live_recovery import reconcile_live_positions

        await reconcile_live_positions(data_dir, env, settings.pools, clock)
    seed = resolve_seed(settings)
    if agent is None:
        agent = await PersistentAgent.open(
            default_state_path(data_dir), clock, durable=settings.durable_writes
        )
    layout = RunLayout(data_dir, new_run_id(clock.now()))
    try:
        await asyncio.to_thread(
            open_run_folder, settings, layout, seed, clock, agent.state.agent_version, kind
        )
    except OSError as exc:
        raise RunOpenError(f"cannot create run folder under {data_dir}: {exc}") from exc
    SINKS.add_run(layout.run_id, layout.campaign_log)
    structlog.contextvars.bind_contextvars(run_id=layout.run_id)
    store = ArtifactStore(layout, durable=settings.durable_writes)
    runner = runner_factory(
        settings=episode_settings(settings, layout.run_id, seed),
        store=store,
        env=env,
        intel=intel,
        agent=agent,
        pool=pool or pool_by_address(settings.pools[0]),
        clock=clock,
        writers=writers,
    )
    return OpenRun(kind, layout, seed, store, runner, agent)


def close_run(run: OpenRun) -> None:
    """Release the run: no ``.active`` marker, no ``run_id`` binding, no campaign.log sink."""
    run.layout.active_marker.unlink(missing_ok=True)
    structlog.contextvars.unbind_contextvars("run_id")
    SINKS.remove_run(run.run_id)


async def complete_interrupted(layout: RunLayout, clock: Clock) -> list[str]:
    """Complete this run's own unfinished episode folders (cancelled by a stop) and rewrite
    its summary; returns the episodes completed. A disk that refuses the writes (full) is
    logged: the next start's recovery completes them."""
    try:
        report: RecoveryReport = await asyncio.to_thread(recover_run, layout, clock.now())
    except OSError as exc:
        log.error(
            "interrupted_episodes_not_completed",
            run_id=layout.run_id,
            error=exc.strerror or str(exc),
            hint="free disk space; the next start completes them",
        )
        return []
    if report.episodes_completed:
        log.warning("interrupted_episodes_completed", episodes=report.episodes_completed)
    return report.episodes_completed
