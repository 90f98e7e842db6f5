"""``clmmd run``: refresh scheduler, trigger watcher and episode worker pool in one process.

Lifecycle: take the data dir (``service.datadir_lock``: one owner) → bind the status endpoint
(a busy address stops here, before anything is written) → open the cache and the trigger
ledger → recover runs left by dead processes and open this run → resume what the ledger still
owes (episodes of accepted triggers, refreshes not yet run) → start the refresh scheduler, the
trigger tail, the episode workers and the health probe → READY=1.

A signal only sets the stop event; shutdown then stops accepting triggers, stops the
scheduler, lets running episodes finish within the drain deadline, cancels the rest (their
folders are completed as ``interrupted``), writes the summary and exits 0. Episodes not started
stay owed in the ledger and run at the next start. A second signal exits at once (the next
start completes what was left). A daemon run that ended without a single episode leaves no
folder behind.

Workers never die of an episode: an episode that cannot even get a folder (full disk) is
counted as lost by reason (``clmmd_episodes_lost_total``); when a trigger asked for it, it stays
owed (the ledger claim is released) and the worker waits for disk space (1, 2, 4 … 30 s, or as
soon as the disk probe finds ``runs/`` writable) before trying again, so a full disk delays
accepted work instead of burning through it. ``/healthz`` says ``degraded`` while episodes are
being lost, ``runs/`` or the cache cannot be written, or a worker is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections import deque
from typing import Any

import structlog

from clmmd.artifacts.base.clock import Clock, SystemClock
from clmmd.artifacts.base.waiting import first_of
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.layout import episode_id as make_episode_id
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.env.base import ClmmEnv
from clmmd.scheduler.scheduling import RefreshScheduler
from clmmd.scheduler.trigger_ledger import TriggerLedger
from clmmd.scheduler.trigger_lines import EpisodesTrigger, RefreshTrigger
from clmmd.scheduler.trigger_tail import TriggerTail
from clmmd.service.config import ConfigError, Settings
from clmmd.service.datadir_lock import DataDirLock
from clmmd.service.host.backlog import EpisodeBacklog, Owed
from clmmd.service.host.health import PROBE_INTERVAL_S, DiskProbe, LostEpisodes
from clmmd.service.host.metrics import ServiceMetrics
from clmmd.service.host.notify import SystemdNotifier, watchdog_interval_s, watchdog_loop
from clmmd.service.host.status import DaemonObserver
from clmmd.service.logging import SINKS
from clmmd.service.runs.losses import describe
from clmmd.service.runs.opening import (
    OpenRun,
    close_run,
    complete_interrupted,
    learning_enabled,
    open_run,
)
from clmmd.service.runs.runner import EpisodeRunner
from clmmd.service.runs.summary_writer import SummaryWriter
from clmmd.service.wiring import IntelStack, build_refresh_stack, open_intel

log = structlog.get_logger(__name__)

RECENT_POOLS = 16
#: A worker whose loop failed (a bug, never an episode) waits this long before going on.
WORKER_RETRY_S = 1.0
#: The longest a worker waits for disk space before trying an owed episode again.
DISK_WAIT_MAX_S = 30.0


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
        self.notifier = notifier or SystemdNotifier.from_env(os.environ, clock=self.clock)
        self.once = once
        self.install_signals = install_signals
        self.stop_event = asyncio.Event()
        self._signals = 0
        self._backlog = EpisodeBacklog()
        self._next_index = 0
        self._running_episodes: set[asyncio.Task[EpisodeRecord | None]] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._summary: SummaryWriter | None = None
        self._recent_pools: deque[str] = deque(maxlen=RECENT_POOLS)
        self._refresh_tasks: set[asyncio.Task[Any]] = set()
        self.layout: RunLayout | None = None
        self._run: OpenRun | None = None
        self.scheduler: RefreshScheduler | None = None
        self.tail: TriggerTail | None = None
        self.ledger: TriggerLedger | None = None
        self.metrics = ServiceMetrics()
        self.lost = LostEpisodes()
        self.probe: DiskProbe | None = None
        self._probe_now = asyncio.Event()
        self._disk_ok = asyncio.Event()  # set while the probe finds runs/ writable
        self._disk_waits = 0  # episodes lost to a full disk in a row
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
        # Reopening files is blocking I/O: off the loop (the handler only starts it).
        task = asyncio.ensure_future(asyncio.to_thread(SINKS.reopen_files))
        task.add_done_callback(lambda _: log.info("log_files_reopened"))

    async def _on_refresh(self, trigger: RefreshTrigger) -> None:
        # A trigger goes straight to the single-flight refresher, never via a scheduler job;
        # the tail must not wait for Dune, so the refresh runs as its own task.
        log.info(
            "trigger_refresh_started",
            trigger_id=trigger.id,
            pool=trigger.pool_address,
            reason=trigger.reason,
            priorities=list(trigger.priorities),
        )
        self._start_refresh(trigger.pool_address, trigger.priorities, [trigger.id])

    def _start_refresh(
        self, pool: str, priorities: tuple[str, ...], trigger_ids: list[str | None]
    ) -> None:
        self._recent_pools.append(pool)
        task = asyncio.create_task(self._refresh_for(pool, priorities, trigger_ids))
        self._refresh_tasks.add(task)
        task.add_done_callback(self._refresh_tasks.discard)

    async def _refresh_for(
        self, pool: str, priorities: tuple[str, ...], trigger_ids: list[str | None]
    ) -> None:
        assert self.scheduler is not None
        await self.scheduler.refresh_pool(pool, priorities)
        done = [i for i in trigger_ids if i is not None]
        if done and self.ledger is not None:
            try:
                await asyncio.to_thread(self.ledger.refresh_done, done, self.clock.now())
            except Exception as exc:  # it runs again at the next start: refreshes may repeat
                log.warning("trigger_refresh_not_recorded", trigger_ids=done, error=str(exc))

    async def _on_episodes(self, trigger: EpisodesTrigger) -> None:
        if self.stop_event.is_set():
            # Accepted in the ledger already: the next start runs them.
            log.warning("episodes_deferred_stopping", trigger_id=trigger.id, count=trigger.count)
            return
        self._backlog.add(trigger.id, trigger.count)
        log.info(
            "episodes_enqueued",
            trigger_id=trigger.id,
            count=trigger.count,
            queue_depth=len(self._backlog),
        )

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        """Serve (or one burst with ``once``); raises :class:`DataDirBusy` when another process
        owns the data dir and :class:`ConfigError` when the status address cannot be bound."""
        lock = await asyncio.to_thread(
            DataDirLock.acquire,
            self.settings.data_dir,
            "run --once" if self.once else "run",
            self.clock.now(),
        )
        try:
            return await self._run_locked()
        finally:
            lock.release()

    async def _run_locked(self) -> int:
        s = self.settings
        loop = asyncio.get_running_loop()
        if self.install_signals:
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
            loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        http = None if self.once else await self._start_http()
        try:
            stack = await asyncio.to_thread(open_intel, s, self.clock)
        except BaseException:
            if http is not None:
                await http.stop()
            raise
        self._stack = stack
        source = None
        try:
            self.ledger = await asyncio.to_thread(
                TriggerLedger.open, s.data_dir, self.clock.now(), durable=s.durable_writes
            )
            refresh = build_refresh_stack(s, stack, self.clock, workers=s.refresh_workers)
            source = refresh.source
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
            run = await open_run(s, "daemon", env=self.env, intel=stack.intel, clock=self.clock)
            self.layout, self._run = run.layout, run
            self.probe = DiskProbe(s.data_dir / "runs", stack.cache)
            self._summary = SummaryWriter(run.store, self.clock)
            self.tail = TriggerTail(
                s.data_dir,
                self.ledger,
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
            await self._resume_owed(run)
            if self.once:
                await self._run_once(run.runner)
            else:
                await self._serve(run.runner, http)
        finally:
            if http is not None:
                await http.stop()
            await self._shutdown()
            if source is not None:
                await source.close()
            if self.ledger is not None:
                self.ledger.close()
            stack.close()
        return 0

    async def _resume_owed(self, run: OpenRun) -> None:
        """Hand the ledger's owed work to this process: claims of dead processes settled,
        episodes still owed queued, refreshes not yet run started again."""
        ledger = self.ledger
        assert ledger is not None

        def folder_exists(run_id: str, episode_id: str) -> bool:
            return RunLayout(self.settings.data_dir, run_id).episode_dir(episode_id).is_dir()

        def settle() -> tuple[tuple[int, int], list[Any], list[RefreshTrigger], int]:
            reconciled = ledger.reconcile(folder_exists)
            pruned = ledger.prune(self.clock.now())
            return reconciled, ledger.pending_episodes(), ledger.pending_refreshes(), pruned

        (kept, released), owed, refreshes, pruned = await asyncio.to_thread(settle)
        for pending in owed:
            self._backlog.add(pending.trigger_id, pending.remaining)
        if owed or refreshes or kept or released:
            log.info(
                "trigger_work_resumed",
                episodes=len(self._backlog),
                triggers=len(owed),
                refreshes=len(refreshes),
                claims_interrupted=kept,
                claims_released=released,
                ids_forgotten=pruned,
            )
        # Refreshes are idempotent: the owed ones of one pool and priorities run once together.
        groups: dict[tuple[str, tuple[str, ...]], list[str | None]] = {}
        for trigger in refreshes:
            groups.setdefault((trigger.pool_address, trigger.priorities), []).append(trigger.id)
        for (pool, priorities), ids in groups.items():
            log.info("trigger_refreshes_resumed", pool=pool, trigger_ids=ids)
            self._start_refresh(pool, priorities, ids)

    async def _run_once(self, runner: EpisodeRunner) -> None:
        """Burst mode: drain the trigger file, one refresh tick, run what is owed, stop."""
        assert self.tail is not None and self.scheduler is not None
        await self.tail.drain_once()
        await self.scheduler.tick()
        await asyncio.gather(*list(self._refresh_tasks), return_exceptions=True)
        self._workers = [
            asyncio.create_task(self._episode_worker(runner, burst=True))
            for _ in range(self.episode_workers)
        ]
        await asyncio.gather(*self._workers)

    async def _serve(self, runner: EpisodeRunner, http: Any) -> None:
        assert self.tail is not None and self.scheduler is not None
        await self.scheduler.start()
        self._workers = [
            asyncio.create_task(self._episode_worker(runner), name=f"episodes-{i}")
            for i in range(self.episode_workers)
        ]
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.tail.run(self.stop_event), name="trigger-tail"),
            asyncio.create_task(self._health_loop(), name="health-probe"),
            *self._workers,
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
        await self.notifier.ready()
        self.notifier.status(f"running: run {self.layout.run_id if self.layout else '?'}")
        log.info("daemon_ready", pools=self.active_pools(), http=self.settings.http_listen)
        try:
            await self.stop_event.wait()
        finally:
            await self.notifier.stopping()
            self.notifier.status("stopping: draining episodes")
            if http is not None:
                await http.stop()
            self._tasks_to_stop = tasks

    async def _start_http(self) -> Any:
        """Bind the status endpoint first: a busy or unassignable address stops the start
        before anything is written (one line, exit status 2)."""
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
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(
                f"invalid configuration: CLMMD_HTTP_LISTEN={self.settings.http_listen!r}: "
                f"cannot listen there: {exc.strerror or exc} (another process on that port? "
                "choose another host:port, or 'off')"
            ) from None
        return server

    async def _health_loop(self) -> None:
        """Run the disk probe now, every PROBE_INTERVAL_S and whenever an episode is lost."""
        assert self.probe is not None
        while not self.stop_event.is_set():
            self._probe_now.clear()
            try:
                await asyncio.to_thread(self.probe.check)
            except Exception as exc:  # a probe that cannot run says so through health
                self.probe.problems = {"probe": f"health probe failed: {describe(exc)}"}
            if "runs" in self.probe.problems:
                self._disk_ok.clear()
            else:
                self._disk_ok.set()
            await first_of(
                self.clock.sleep(PROBE_INTERVAL_S),
                self._probe_now.wait(),
                self.stop_event.wait(),
            )

    async def _episode_schedule(self) -> None:
        while not self.stop_event.is_set():
            await self.clock.sleep(self.settings.episode_interval_s)
            if not self.stop_event.is_set():
                self._backlog.add(None, 1)

    # ------------------------------------------------------------------ episodes

    async def _episode_worker(self, runner: EpisodeRunner, burst: bool = False) -> None:
        while not self.stop_event.is_set():
            owed = self._backlog.take_nowait() if burst else await self._backlog.take()
            if owed is None:
                return
            if self.stop_event.is_set():
                self._backlog.give_back(owed.trigger_id)
                return
            try:
                await self._start_episode(runner, owed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug: never a reason to lose the worker
                log.error(
                    "episode_worker_error",
                    error=f"{type(exc).__name__}: {exc}",
                    hint="the worker goes on with the next episode",
                    exc_info=True,
                )
                await self.clock.sleep(WORKER_RETRY_S)

    async def _start_episode(self, runner: EpisodeRunner, owed: Owed) -> None:
        """Claim the episode in the ledger (for a trigger's), run it, wait for it."""
        self._next_index += 1
        index = self._next_index
        if owed.trigger_id is not None and not await self._claim(owed, index):
            return
        task = asyncio.create_task(self._episode(runner, index, owed))
        self._running_episodes.add(task)
        task.add_done_callback(self._running_episodes.discard)
        # Shielded: a shutdown cancels the worker, not the episode (it is drained).
        if await asyncio.shield(task) is None and self._disk_waits:
            await self._wait_for_disk()

    async def _claim(self, owed: Owed, index: int) -> bool:
        assert owed.trigger_id is not None and self.ledger is not None and self.layout
        try:
            claimed = await asyncio.to_thread(
                self.ledger.claim_episode,
                owed.trigger_id,
                self.layout.run_id,
                make_episode_id(index),
                self.clock.now(),
            )
        except Exception as exc:
            # Still owed (nothing claimed): keep its place, and wait before trying again.
            self._backlog.give_back(owed.trigger_id)
            log.error(
                "episode_claim_failed",
                trigger_id=owed.trigger_id,
                error=describe(exc),
                hint="the trigger ledger cannot be written (disk full?); retried shortly",
            )
            await self.clock.sleep(WORKER_RETRY_S)
            return False
        if not claimed:
            log.warning("episode_not_owed", trigger_id=owed.trigger_id)
        return claimed

    async def _episode(self, runner: EpisodeRunner, index: int, owed: Owed) -> EpisodeRecord | None:
        """One episode and its bookkeeping; None when it was lost (no folder)."""
        try:
            record = await runner.run(index, trigger_id=owed.trigger_id)
        except Exception as exc:
            reason = self.lost.lost(exc)
            self.metrics.episode_lost(reason)
            self._probe_now.set()
            # A trigger's episode is not dropped with a full disk: it stays owed, and the
            # worker waits for space (no folder was made, so it cannot run twice).
            keep = owed.trigger_id is not None and reason == "disk_full"
            log.error(
                "episode_lost",
                index=index,
                trigger_id=owed.trigger_id,
                reason=reason,
                error=describe(exc),
                kept_owed=keep,
                hint="check disk space and permissions of the data dir",
            )
            if keep:
                await self._release_claim(index)
                self._backlog.give_back(owed.trigger_id)
                self._disk_waits += 1
            else:
                await self._end_claim(owed, index, "lost")
            return None
        if self.lost.losing or (self.probe is not None and self.probe.problems):
            self._probe_now.set()  # space may be back: let health say so now
        self.lost.saved()
        self._disk_waits = 0
        self.metrics.episode_finished(record.status)
        if self._summary is not None:
            self._summary.add(record)
        await self._end_claim(owed, index, "finished")
        return record

    async def _wait_for_disk(self) -> None:
        """After an episode lost to a full disk: wait (1, 2, 4 … 30 s) or until the probe
        finds runs/ writable again, whichever comes first."""
        delay = min(DISK_WAIT_MAX_S, WORKER_RETRY_S * 2 ** max(0, self._disk_waits - 1))
        await first_of(self.clock.sleep(delay), self._disk_ok.wait(), self.stop_event.wait())

    async def _release_claim(self, index: int) -> None:
        if self.ledger is None or self.layout is None:
            return
        with contextlib.suppress(Exception):  # a claim left open is settled at the next start
            await asyncio.to_thread(
                self.ledger.release_episode, self.layout.run_id, make_episode_id(index)
            )

    async def _end_claim(self, owed: Owed, index: int, state: str) -> None:
        if owed.trigger_id is None or self.ledger is None or self.layout is None:
            return
        with contextlib.suppress(Exception):  # a claim left open is settled at the next start
            await asyncio.to_thread(
                self.ledger.end_episode,
                self.layout.run_id,
                make_episode_id(index),
                "lost" if state == "lost" else "finished",
            )

    # ------------------------------------------------------------------ shutdown

    async def _shutdown(self) -> None:
        self.stop_event.set()
        tasks = self._tasks_to_stop or self._workers
        # 1. stop accepting: the tail, the schedule, idle workers.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        not_started = len(self._backlog)
        if not_started:
            log.warning(
                "episodes_not_started",
                count=not_started,
                hint="owed to their triggers in the ledger: the next start runs them",
            )
        # 2. refreshes: the scheduler cancels its tick and every in-flight fetch (a refresh
        # trigger not finished runs again at the next start).
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
            _, pending = await asyncio.wait(running, timeout=self.settings.drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.warning("episodes_interrupted", count=len(pending))
        if self.tail is not None:
            self.tail.close()
        if self._summary is not None:
            await self._summary.close()
        # 4. complete interrupted folders, final summary, release the run.
        if self.layout is not None:
            await complete_interrupted(self.layout, self.clock)
            log.info(
                "daemon_stopped",
                run_id=self.layout.run_id,
                episodes=self.episodes_finished(),
                lost=self.lost.total,
                not_started=not_started,
            )
        if self._run is not None:
            close_run(self._run)
            await asyncio.to_thread(discard_if_empty, self._run.layout)

    # ------------------------------------------------------------------ status

    def episodes_finished(self) -> int:
        return self._summary.totals.episodes if self._summary is not None else 0

    def episodes_running(self) -> int:
        return sum(1 for t in self._running_episodes if not t.done())

    def queue_depth(self) -> int:
        return len(self._backlog)

    def workers_alive(self) -> int:
        return sum(1 for t in self._workers if not t.done())

    @property
    def stack(self) -> IntelStack | None:
        return self._stack

    def health(self) -> list[str]:
        """Reasons the daemon is degraded (empty when healthy)."""
        return self.observer.health()

    def status(self) -> dict[str, Any]:
        """What ``/status`` serves."""
        return self.observer.status()

    def cache_quality(self) -> dict[str, Any]:
        """Quality of every key the scheduler keeps fresh."""
        return self.observer.cache_quality()


def discard_if_empty(layout: RunLayout) -> bool:
    """Remove a daemon run folder that holds no episode (blocking); True when removed.

    A burst with nothing to do, or a daemon stopped before its first episode, would otherwise
    leave a run that only clutters ``clmmd runs``; its log lines are in clmmd.log."""
    episodes = layout.episodes_dir
    try:
        if episodes.is_dir() and any(episodes.iterdir()):
            return False
        shutil.rmtree(layout.run_dir)
    except OSError as exc:
        log.warning("empty_run_not_removed", run_id=layout.run_id, error=str(exc))
        return False
    log.info("empty_run_removed", run_id=layout.run_id)
    return True
