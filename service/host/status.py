"""What the daemon reports about itself: ``/healthz`` reasons, ``/status``, metric gauges."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Protocol

from clmmd.artifacts.base.clock import Clock
from clmmd.artifacts.layout import RunLayout
from clmmd.scheduler.credits import CreditLedger
from clmmd.scheduler.planner import candidate_requests
from clmmd.scheduler.scheduling import RefreshScheduler
from clmmd.scheduler.trigger_tail import TriggerTail
from clmmd.service.config import Settings
from clmmd.service.host.metrics import ServiceMetrics
from clmmd.service.wiring import IntelStack


class ObservedDaemon(Protocol):
    """What the observer reads of the daemon (a protocol, so the two modules do not import
    each other)."""

    settings: Settings
    clock: Clock
    stop_event: asyncio.Event
    once: bool
    layout: RunLayout | None
    scheduler: RefreshScheduler | None
    tail: TriggerTail | None
    metrics: ServiceMetrics

    @property
    def stack(self) -> IntelStack | None: ...

    def active_pools(self) -> list[str]: ...

    def episodes_finished(self) -> int: ...

    def episodes_running(self) -> int: ...

    def queue_depth(self) -> int: ...


class DaemonObserver:
    """Reads a daemon's live state; never changes it (besides the metrics)."""

    def __init__(self, daemon: ObservedDaemon) -> None:
        self.daemon = daemon
        self._seen_triggers = (0, 0)

    def health(self) -> list[str]:
        """Reasons the daemon is unhealthy (empty when healthy), for ``/healthz``."""
        d = self.daemon
        reasons = []
        if d.stop_event.is_set():
            reasons.append("stopping")
        if d.scheduler is not None and not d.scheduler.running and not d.once:
            reasons.append("refresh scheduler not running")
        return reasons

    def cache_quality(self) -> dict[str, Any]:
        """Quality of every key the scheduler keeps fresh (what ``clmmd status`` shows)."""
        d = self.daemon
        stack = d.stack
        if stack is None:
            return {}
        now = d.clock.now()
        out: dict[str, Any] = {}
        for spec, request in candidate_requests(
            stack.registry, d.active_pools(), pool_cap=d.settings.pool_cap
        ):
            _, meta = stack.cache.get_with_quality(request.key, now, spec.max_age_seconds)
            envelope = stack.cache.get_envelope(request.key)
            out[request.key] = {**meta, "error": envelope.error if envelope else None}
        return out

    def credits(self) -> dict[str, Any] | None:
        """Dune credits spent today and the daily budget (from the cache: any process)."""
        d = self.daemon
        if d.stack is None:
            return None
        budget = d.settings.dune_credit_budget_per_day
        return CreditLedger(d.stack.cache, d.clock, budget).status()

    def update_gauges(self) -> None:
        """Refresh the gauges from live state (called on each /metrics scrape)."""
        d = self.daemon
        counts: dict[str, int] = {}
        for entry in self.cache_quality().values():
            counts[entry["quality"]] = counts.get(entry["quality"], 0) + 1
        d.metrics.set_cache_quality(counts)
        d.metrics.set_episode_queue_depth(d.queue_depth())
        credits = self.credits()
        if credits is not None:
            d.metrics.set_credits(credits["used"], credits["budget_per_day"])
        if d.scheduler is not None:
            d.metrics.set_fetches_in_flight(len(d.scheduler.stats().get("in_flight", [])))
        if d.tail is not None:
            stats = d.tail.stats
            processed, rejected = self._seen_triggers
            # The tail keeps totals; Prometheus counters want increments.
            if stats.dispatched > processed:
                d.metrics.trigger_processed(stats.dispatched - processed)
            if stats.rejected > rejected:
                d.metrics.trigger_rejected("invalid", stats.rejected - rejected)
            self._seen_triggers = (stats.dispatched, stats.rejected)
            if stats.last_lag_s is not None:
                d.metrics.set_trigger_lag(stats.last_lag_s)

    def status(self) -> dict[str, Any]:
        """What ``/status`` serves."""
        d = self.daemon
        return {
            "run_id": d.layout.run_id if d.layout else None,
            "stopping": d.stop_event.is_set(),
            "episodes": {
                "finished": d.episodes_finished(),
                "running": d.episodes_running(),
                "queued": d.queue_depth(),
            },
            "refresh": d.scheduler.stats() if d.scheduler else None,
            "triggers": dataclasses.asdict(d.tail.stats) if d.tail else None,
            "active_pools": d.active_pools(),
            "cache": self.cache_quality(),
            "credits": self.credits(),
        }
