"""The refresh schedule: an APScheduler interval job that runs one bounded tick at a time.

A tick plans against the cache at ``clock.now()`` (what is missing, stale or too old, P0
first) and hands the plan to the shared :class:`Refresher`, so ticks, trigger refreshes
(:meth:`RefreshScheduler.refresh_pool`) and ``refresh --once`` share its worker bound and its
single flight. APScheduler 3 has sharp edges for async jobs; each is handled here:

* ``AsyncIOScheduler.start`` needs the running loop, so :meth:`RefreshScheduler.start` is
  ``async``.
* A job that never returns blocks every later run: the job has ``max_instances=1`` and
  ``coalesce=True``, every fetch has a deadline (the Refresher's), and the whole tick is bounded
  by ``asyncio.timeout``. Keys a timed-out tick had not started are simply planned again.
* ``misfire_grace_time`` defaults to 1 s, which drops a tick whenever the loop was busy for a
  second; here it is the interval.
* ``shutdown(wait=True)`` does not wait for coroutine jobs, so :meth:`RefreshScheduler.stop`
  cancels and awaits the running tick itself, then closes the Refresher.
* Missed runs, runs skipped because a tick is still running, and failed ticks reach a listener
  that logs them and counts them for ``/status``.

APScheduler keeps the interval on real time (it cannot take our :class:`Clock`); what a tick
plans and stamps uses the injected clock, so tests drive :meth:`RefreshScheduler.tick` directly
or poke the job with :meth:`RefreshScheduler.run_now`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from clmmd.artifacts.base.clock import Clock, utc_iso
from clmmd.scheduler.cache import Envelope, IntelCache
from clmmd.scheduler.planner import (
    PlannedFetch,
    candidate_requests,
    keys_for_pool,
    plan_pool_refresh,
    plan_refresh,
)
from clmmd.scheduler.refresher import FetchOutcome, OutcomeStatus, Refresher, RefreshReport
from clmmd.scheduler.registry import Registry

log = structlog.get_logger(__name__)

JOB_ID = "clmmd-refresh-tick"
#: A default tick bound as a share of the interval, so a tick ends before the next one is due.
DEFAULT_TICK_SHARE = 0.9
TICK_TIMED_OUT = "tick timed out before this key finished"


class RefreshScheduler:
    """Runs :meth:`tick` every ``interval_s`` seconds; see the module docstring."""

    def __init__(
        self,
        refresher: Refresher,
        cache: IntelCache,
        registry: Registry,
        clock: Clock,
        *,
        active_pools: Callable[[], Sequence[str]],
        interval_s: float = 60,
        pool_cap: int = 3,
        tick_timeout_s: float | None = None,
        on_report: Callable[[RefreshReport], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if pool_cap < 0:
            raise ValueError(f"pool_cap must be >= 0, got {pool_cap}")
        if tick_timeout_s is not None and tick_timeout_s <= 0:
            raise ValueError(f"tick_timeout_s must be > 0, got {tick_timeout_s}")
        self._refresher = refresher
        self._cache = cache
        self._registry = registry
        self._clock = clock
        self._active_pools = active_pools
        # Metrics hook: every report (ticks and trigger refreshes) goes through it.
        self._on_report = on_report
        self.interval_s = interval_s
        self.pool_cap = pool_cap
        self.tick_timeout_s = (
            tick_timeout_s if tick_timeout_s is not None else interval_s * DEFAULT_TICK_SHARE
        )
        self._scheduler: AsyncIOScheduler | None = None
        self._job_tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._stopped = False
        self._ticks = 0
        self._timeouts = 0
        self._missed = 0
        self._max_instances = 0
        self._errors = 0
        self._last_tick_at: str | None = None
        self._last_report: dict[str, Any] | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None and not self._stopping

    @property
    def apscheduler(self) -> AsyncIOScheduler | None:
        """The underlying APScheduler once started (for wiring and tests)."""
        return self._scheduler

    async def start(self, *, run_immediately: bool = True) -> None:
        """Start the interval job on the running loop; the first tick runs at once by default."""
        if self._stopping or self._stopped:
            raise RuntimeError("a stopped RefreshScheduler cannot be started again")
        if self._scheduler is not None:
            raise RuntimeError("RefreshScheduler already started")
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_listener(
            self._on_job_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )
        # Leaving next_run_time out lets the trigger pick the first run (one interval from now);
        # passing None would add the job paused.
        first_run = {"next_run_time": datetime.now(UTC)} if run_immediately else {}
        scheduler.add_job(
            self._run_job,
            "interval",
            seconds=self.interval_s,
            id=JOB_ID,
            name="refresh tick",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, math.ceil(self.interval_s)),
            **first_run,
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "refresh_scheduler_started",
            interval_s=self.interval_s,
            tick_timeout_s=self.tick_timeout_s,
            pool_cap=self.pool_cap,
            workers=self._refresher.workers,
        )

    def run_now(self) -> None:
        """Ask APScheduler to run the tick job now (skipped, and counted, if one is running)."""
        if self._scheduler is None or self._stopping:
            raise RuntimeError("RefreshScheduler is not running")
        self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    async def stop(self) -> None:
        """Stop scheduling, cancel and await a running tick, close the Refresher. Idempotent."""
        if self._stopping or self._stopped:
            return
        self._stopping = True
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)  # takes effect on the loop's next iteration
        await asyncio.sleep(0)
        while self._job_tasks:
            tasks = list(self._job_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._job_tasks.difference_update(tasks)
        await self._refresher.close()
        self._stopped = True
        log.info("refresh_scheduler_stopped", ticks=self._ticks)

    async def tick(self) -> RefreshReport:
        """Refresh what is due now, within ``tick_timeout_s``; also the ``--once`` path."""
        pools = list(self._active_pools())
        candidates = candidate_requests(self._registry, pools, pool_cap=self.pool_cap)
        envelopes = {req.key: self._cache.get_envelope(req.key) for _, req in candidates}
        planned = plan_refresh(
            self._registry, pools, envelopes, self._clock.now(), pool_cap=self.pool_cap
        )
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(self.tick_timeout_s):
                report = await self._refresher.refresh(planned)
        except TimeoutError:
            self._timeouts += 1
            report = self._report_after_timeout(planned, envelopes)
            log.warning(
                "refresh_tick_timed_out",
                tick_timeout_s=self.tick_timeout_s,
                planned=len(planned),
                finished=len(report.outcomes) - _timed_out(report),
                still_running=sorted(self._refresher.in_flight),
            )
        self._ticks += 1
        self._last_tick_at = utc_iso(self._clock.now())
        summary = {k: v for k, v in report.as_dict().items() if k != "outcomes"}
        self._last_report = summary
        self._report(report)
        log.info(
            "refresh_tick_done",
            duration_s=round(self._clock.monotonic() - started, 3),
            **summary,
        )
        return report

    async def refresh_pool(
        self, pool_address: str, priorities: Iterable[str] = ("P0", "P1")
    ) -> RefreshReport:
        """Force-refresh one pool's keys (a trigger) through the shared Refresher."""
        wanted = tuple(priorities)
        keys = keys_for_pool(self._registry, pool_address, wanted)
        envelopes = {key: self._cache.get_envelope(key) for key in keys}
        planned = plan_pool_refresh(
            self._registry, pool_address, envelopes, self._clock.now(), priorities=wanted
        )
        report = await self._refresher.refresh(planned)
        self._report(report)
        return report

    def _report(self, report: RefreshReport) -> None:
        if self._on_report is not None:
            try:
                self._on_report(report)
            except Exception as exc:  # metrics must never break refreshing
                log.warning("refresh_report_hook_failed", error=str(exc))

    def stats(self) -> dict[str, Any]:
        """Counters for ``/status`` and ``clmmd status``."""
        return {
            "running": self.running,
            "interval_s": self.interval_s,
            "tick_timeout_s": self.tick_timeout_s,
            "pool_cap": self.pool_cap,
            "workers": self._refresher.workers,
            "ticks": self._ticks,
            "last_tick_at": self._last_tick_at,
            "last_report": self._last_report,
            "timeouts": self._timeouts,
            "missed": self._missed,
            "max_instances": self._max_instances,
            "errors": self._errors,
            "in_flight": sorted(self._refresher.in_flight),
            "peak_in_flight": self._refresher.peak_in_flight,
        }

    # -- APScheduler side ----------------------------------------------------------------

    async def _run_job(self) -> None:
        if self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._job_tasks.add(task)
        try:
            await self.tick()
        finally:
            if task is not None:
                self._job_tasks.discard(task)

    def _on_job_event(self, event: JobEvent) -> None:
        if self._stopping:  # the cancelled tick of stop() is reported as an error; it is not
            return
        code = event.code
        if code == EVENT_JOB_MISSED:
            self._missed += 1
            log.warning("refresh_tick_missed", scheduled_at=_iso(event), missed=self._missed)
        elif code == EVENT_JOB_MAX_INSTANCES:
            self._max_instances += 1
            log.warning(
                "refresh_tick_skipped_still_running",
                scheduled_at=_iso(event),
                skipped=self._max_instances,
            )
        elif code == EVENT_JOB_ERROR:
            self._errors += 1
            exc = getattr(event, "exception", None)
            log.error(
                "refresh_tick_error",
                error=f"{type(exc).__name__}: {exc}",
                errors=self._errors,
                hint="the next tick retries; if it repeats, check `clmmd status` and the cache",
            )

    def _report_after_timeout(
        self, planned: Sequence[PlannedFetch], before: dict[str, Envelope | None]
    ) -> RefreshReport:
        # The cancelled refresh() returns nothing, so read what it did from the cache: a key
        # whose envelope was replaced during the tick finished (the mirror hands out a new dict
        # on every write); the others had not finished and are planned again next tick.
        outcomes = []
        for item in planned:
            env = self._cache.get_envelope(item.key)
            if env is not None and env is not before.get(item.key):
                status: OutcomeStatus = "ok" if env.ok else "failed"
                outcomes.append(FetchOutcome(item.key, status, 0.0, env.error))
            else:
                outcomes.append(FetchOutcome(item.key, "failed", 0.0, TICK_TIMED_OUT))
        # This call's own peak is lost with it; the Refresher's lifetime peak bounds it.
        return RefreshReport(tuple(outcomes), self._refresher.peak_in_flight)


def _timed_out(report: RefreshReport) -> int:
    return sum(1 for o in report.outcomes if o.error == TICK_TIMED_OUT)


def _iso(event: JobEvent) -> str | None:
    moment = getattr(event, "scheduled_run_time", None)
    if moment is None:
        times = getattr(event, "scheduled_run_times", None) or [None]
        moment = times[-1]
    return utc_iso(moment) if isinstance(moment, datetime) else None


__all__ = ["JOB_ID", "RefreshScheduler"]
