"""``clmmd run``: refresh scheduler, trigger watcher and episode worker pool in one process.

Lifecycle: validate configuration → recover runs left by dead processes → open the cache →
start the refresh scheduler, the trigger tail, the episode workers and the status endpoint →
READY=1. A signal only sets the stop event; shutdown then stops accepting triggers, stops the
scheduler, lets running episodes finish within the drain deadline, cancels the rest (their
folders are completed as ``interrupted``), writes the summary and exits 0. A second signal
exits at once (the next start completes what was left).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from typing import Any

import structlog

from clmmd.artifacts.base.clock import Clock, SystemClock
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.recovery import recover_run
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.env.base import ClmmEnv
from clmmd.scheduler.scheduling import RefreshScheduler
from clmmd.scheduler.trigger_lines import EpisodesTrigger, RefreshTrigger
from clmmd.scheduler.trigger_tail import TriggerTail
from clmmd.service.config import Settings
from clmmd.service.host.metrics import ServiceMetrics
from clmmd.service.host.notify import SystemdNotifier, watchdog_interval_s, watchdog_loop
from clmmd.service.host.status import DaemonObserver
from clmmd.service.logging import SINKS
from clmmd.service.runs.opening import OpenRun, close_run, learning_enabled, open_run
from clmmd.service.runs.runner import EpisodeRunner
from clmmd.service.runs.summary_writer import SummaryWriter
from clmmd.service.wiring import IntelStack, build_refresh_stack, open_intel

log = structlog.get_logger(__name__)

RECENT_POOLS = 16


class Daemon:
    """The long-running service. ``run()`` returns the process exit status."""

    def __init__(
        self,
        settings: Settings,
        *,
        env: ClmmEnv,
        clock: Clock | None = None,
        notifier: SystemdNotifier | None = None,
        once: bool = False,
        install_signals: bool = True,
    ) -> None:
        self.settings = settings
        self.env = env
        self.clock = clock or SystemClock()
        self.notifier = notifier or SystemdNotifier.from_env(os.environ)
        self.once = once
        self.install_signals = install_signals
        self.stop_event = asyncio.Event()
        self._signals = 0
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._next_index = 0
        self._running_episodes: set[asyncio.Task[EpisodeRecord]] = set()
        self._summary: SummaryWriter | None = None
        self._recent_pools: deque[str] = deque(maxlen=RECENT_POOLS)
        self._refresh_tasks: set[asyncio.Task[Any]] = set()
        self.layout: RunLayout | None = None
        self._run: OpenRun | None = None
        self.scheduler: RefreshScheduler | None = None
        self.tail: TriggerTail | None = None
        self.metrics = ServiceMetrics()
        self.observer = DaemonObserver(self)
        self._stack: IntelStack | None = None
        self._tasks_to_stop: list[asyncio.Task[Any]] = []

    # ------------------------------------------------------------------ wiring

    @property
    def episode_workers(self) -> int:
        """Concurrent episodes: one at a time whenever episodes may learn (real mode, or
        LEARN_FROM_MOCK), so each proposes from what the previous one learned and live
        exposure is one position at a time; otherwise ``CLMMD_EPISODE_WORKERS``."""
        return 1 if learning_enabled(self.settings) else self.settings.episode_workers

    def active_pools(self) -> list[str]:
        """Configured pools first, then pools recent triggers asked about; unique, capped."""
        seen: list[str] = []
        for pool in [*self.settings.pools, *reversed(self._recent_pools)]:
            if pool.lower() not in (p.lower() for p in seen):
                seen.append(pool)
        return seen[: self.settings.pool_cap]

    def request_stop(self, reason: str = "requested") -> None:
        """Idempotent: the first call starts a graceful shutdown."""
        if not self.stop_event.is_set():
            log.info("daemon_stop_requested", reason=reason)
            self.stop_event.set()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("daemon_forced_exit", signal=signal.Signals(signum).name)
            SINKS.close()
            os._exit(130)  # the next start completes interrupted episodes
        self.request_stop(signal.Signals(signum).name)

    def _on_hup(self) -> None:
        SINKS.reopen_files()
        log.info("log_files_reopened")

    async def _on_refresh(self, trigger: RefreshTrigger) -> None:
        # A trigger goes straight to the single-flight refresher, never via a scheduler job;
        # the tail must not wait for Dune, so the refresh runs as its own task.
        self._recent_pools.append(trigger.pool_address)
        assert self.scheduler is not None
        log.info(
            "trigger_refresh_started",
            trigger_id=trigger.id,
            pool=trigger.pool_address,
            reason=trigger.reason,
            priorities=list(trigger.priorities),
        )
        task = asyncio.create_task(
            self.scheduler.refresh_pool(trigger.pool_address, trigger.priorities)
        )
        self._refresh_tasks.add(task)
        task.add_done_callback(self._refresh_tasks.discard)

    async def _on_episodes(self, trigger: EpisodesTrigger) -> None:
        if self.stop_event.is_set():
            log.warning("episodes_refused_stopping", trigger_id=trigger.id, count=trigger.count)
            return
        for _ in range(trigger.count):
            self._enqueue()
        log.info(
            "episodes_enqueued",
            trigger_id=trigger.id,
            count=trigger.count,
            queue_depth=self._queue.qsize(),
        )

    def _enqueue(self) -> None:
        self._next_index += 1
        self._queue.put_nowait(self._next_index)

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        s = self.settings
        loop = asyncio.get_running_loop()
        if self.install_signals:
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
            loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        stack = open_intel(s, self.clock)
        refresh = build_refresh_stack(s, stack, self.clock, workers=s.refresh_workers)
        self.scheduler = RefreshScheduler(
            refresh.refresher,
            stack.cache,
            stack.registry,
            self.clock,
            active_pools=self.active_pools,
            interval_s=s.refresh_interval_s,
            pool_cap=s.pool_cap,
            on_report=self.metrics.record_refresh,
        )
        self._stack = stack
        run = await open_run(s, "daemon", env=self.env, intel=stack.intel, clock=self.clock)
        self.layout, self._run = run.layout, run
        runner, store = run.runner, run.store
        self._summary = SummaryWriter(store, self.clock)
        self.tail = TriggerTail(
            s.data_dir,
            stack.cache,
            self.clock,
            on_refresh=self._on_refresh,
            on_episodes=self._on_episodes,
        )
        log.info(
            "daemon_starting",
            run_id=run.run_id,
            seed=run.seed,
            pid=os.getpid(),
            exec_mode=s.exec_mode,
            config_hash=s.config_hash(),
            config=s.effective(),
        )
        try:
            if self.once:
                await self._run_once(runner, store)
            else:
                await self._serve(runner, store)
        finally:
            await self._shutdown(runner, store)
            await refresh.source.close()
            stack.close()
        return 0

    async def _run_once(self, runner: EpisodeRunner, store: ArtifactStore) -> None:
        """Burst mode: drain the trigger file, one refresh tick, run what was queued, stop."""
        assert self.tail is not None and self.scheduler is not None
        await self.tail.drain_once()
        await self.scheduler.tick()
        await asyncio.gather(*list(self._refresh_tasks), return_exceptions=True)
        workers = [
            asyncio.create_task(self._episode_worker(runner, store, burst=True))
            for _ in range(self.episode_workers)
        ]
        await asyncio.gather(*workers)

    async def _serve(self, runner: EpisodeRunner, store: ArtifactStore) -> None:
        assert self.tail is not None and self.scheduler is not None
        await self.scheduler.start()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.tail.run(self.stop_event), name="trigger-tail"),
            *(
                asyncio.create_task(self._episode_worker(runner, store), name=f"episodes-{i}")
                for i in range(self.episode_workers)
            ),
        ]
        if self.settings.episode_interval_s > 0:
            tasks.append(asyncio.create_task(self._episode_schedule(), name="episode-schedule"))
        interval = watchdog_interval_s(os.environ)
        if interval is not None:
            tasks.append(
                asyncio.create_task(
                    watchdog_loop(
                        self.notifier,
                        interval,
                        self.stop_event,
                        clock=self.clock,
                        max_lag_s=interval,
                    )
                )
            )
        http = await self._start_http()
        self.notifier.ready()
        self.notifier.status(f"running: run {self.layout.run_id if self.layout else '?'}")
        log.info("daemon_ready", pools=self.active_pools(), http=self.settings.http_listen)
        try:
            await self.stop_event.wait()
        finally:
            self.notifier.stopping()
            self.notifier.status("stopping: draining episodes")
            if http is not None:
                await http.stop()
            self._tasks_to_stop = tasks

    async def _start_http(self) -> Any:
        address = self.settings.http_listen_address
        if address is None:
            return None
        from clmmd.service.host.http import StatusServer

        server = StatusServer(
            self.metrics,
            self.observer.status,
            host=address[0],
            port=address[1],
            health=self.observer.health,
            on_scrape=self.observer.update_gauges,
        )
        await server.start()
        return server

    async def _episode_schedule(self) -> None:
        while not self.stop_event.is_set():
            await self.clock.sleep(self.settings.episode_interval_s)
            if not self.stop_event.is_set():
                self._enqueue()

    async def _episode_worker(
        self, runner: EpisodeRunner, store: ArtifactStore, burst: bool = False
    ) -> None:
        while not self.stop_event.is_set():
            if burst:
                try:
                    index = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
            else:
                index = await self._queue.get()
            if self.stop_event.is_set():
                return
            task = asyncio.create_task(runner.run(index))
            self._running_episodes.add(task)
            try:
                record = await asyncio.shield(task)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "episode_lost",
                    index=index,
                    error=str(exc),
                    hint="check disk space and permissions of the data dir",
                )
                continue
            finally:
                if task.done():
                    self._running_episodes.discard(task)
            self._finished(record)

    def _finished(self, record: EpisodeRecord) -> None:
        self.metrics.episode_finished(record.status)
        if self._summary is not None:
            self._summary.add(record)

    async def _shutdown(self, runner: EpisodeRunner, store: ArtifactStore) -> None:
        self.stop_event.set()
        tasks = self._tasks_to_stop
        # 1. stop accepting: the tail, the schedule, idle workers.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        not_started = self._queue.qsize()
        if not_started:
            log.warning("episodes_not_started", count=not_started)
        # 2. refreshes: the scheduler cancels its tick and every in-flight fetch.
        if self.scheduler is not None:
            await self.scheduler.stop()
        for task in list(self._refresh_tasks):
            task.cancel()
        await asyncio.gather(*list(self._refresh_tasks), return_exceptions=True)
        # 3. drain running episodes within the deadline, then cancel the rest.
        running = [t for t in self._running_episodes if not t.done()]
        if running:
            log.info(
                "draining_episodes", running=len(running), deadline_s=self.settings.drain_timeout_s
            )
            done, pending = await asyncio.wait(running, timeout=self.settings.drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                with contextlib.suppress(Exception):
                    self._finished(task.result())
            if pending:
                log.warning("episodes_interrupted", count=len(pending))
        if self.tail is not None:
            self.tail.close()
        if self._summary is not None:
            await self._summary.close()
        # 4. complete interrupted folders, final summary, release the run.
        if self.layout is not None:
            report = await asyncio.to_thread(recover_run, self.layout, self.clock.now())
            if report.episodes_completed:
                log.warning("interrupted_episodes_completed", episodes=report.episodes_completed)
            log.info(
                "daemon_stopped",
                run_id=self.layout.run_id,
                episodes=self.episodes_finished(),
                not_started=not_started,
            )
        if self._run is not None:
            close_run(self._run)

    # ------------------------------------------------------------------ status

    def episodes_finished(self) -> int:
        return self._summary.totals.episodes if self._summary is not None else 0

    def episodes_running(self) -> int:
        return sum(1 for t in self._running_episodes if not t.done())

    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def stack(self) -> IntelStack | None:
        return self._stack

    def health(self) -> list[str]:
        """Reasons the daemon is unhealthy (empty when healthy)."""
        return self.observer.health()

    def status(self) -> dict[str, Any]:
        """What ``/status`` serves."""
        return self.observer.status()

    def cache_quality(self) -> dict[str, Any]:
        """Quality of every key the scheduler keeps fresh."""
        return self.observer.cache_quality()
