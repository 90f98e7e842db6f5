"""The service's Prometheus metrics, in a registry of their own.

Each :class:`ServiceMetrics` owns a ``CollectorRegistry`` instead of using prometheus-client's
global one, so a process (or a test) can create as many as it likes without "duplicated
timeseries" errors, and ``/metrics`` shows exactly these series plus ``process_*``.

Label values are always from small fixed sets (outcome, quality, episode status, a rejection
reason code): never a cache key, a pool address or an error message, which would grow the
series without bound and could carry text nobody meant to publish.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from clmmd.scheduler.quality import QUALITIES
from clmmd.scheduler.refresher import RefreshReport

NAMESPACE = "clmmd"
REFRESH_OUTCOMES = ("ok", "failed", "skipped", "over_budget")
#: Fetches take from well under a second (cached "latest" results) to minutes (executions).
FETCH_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_REPORT_STATUS = {
    "ok": "ok",
    "failed": "failed",
    "skipped_duplicate": "skipped",
    "skipped_budget": "over_budget",
}


class ServiceMetrics:
    """Counters, gauges and a histogram for the daemon, with small update methods."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg, ns = self.registry, NAMESPACE
        self.refreshes = Counter(
            "refreshes",
            "Cache key refreshes by outcome (skipped: another caller was already fetching it).",
            ["outcome"],
            namespace=ns,
            registry=reg,
        )
        self.fetch_latency = Histogram(
            "fetch_latency_seconds",
            "Duration of one source fetch including the cache write, ok or failed.",
            namespace=ns,
            registry=reg,
            buckets=FETCH_LATENCY_BUCKETS,
        )
        self.cache_keys = Gauge(
            "cache_keys",
            "Cache keys by quality at the last count.",
            ["quality"],
            namespace=ns,
            registry=reg,
        )
        self.trigger_lag = Gauge(
            "trigger_lag_seconds",
            "Age of the oldest trigger line not yet processed (0 when caught up).",
            namespace=ns,
            registry=reg,
        )
        self.triggers_processed = Counter(
            "triggers_processed", "Trigger lines acted on.", namespace=ns, registry=reg
        )
        self.triggers_rejected = Counter(
            "triggers_rejected",
            "Trigger lines refused, by reason code.",
            ["reason"],
            namespace=ns,
            registry=reg,
        )
        self.episodes = Counter(
            "episodes", "Finished episodes by status.", ["status"], namespace=ns, registry=reg
        )
        self.episode_queue_depth = Gauge(
            "episode_queue_depth", "Episodes waiting for a worker.", namespace=ns, registry=reg
        )
        self.fetches_in_flight = Gauge(
            "fetches_in_flight", "Source fetches running right now.", namespace=ns, registry=reg
        )
        self.dune_credits_used = Gauge(
            "dune_credits_used_today",
            "Dune credits spent today (UTC day), as recorded in the cache.",
            namespace=ns,
            registry=reg,
        )
        self.dune_credit_budget = Gauge(
            "dune_credit_budget_per_day",
            "DUNE_CREDIT_BUDGET_PER_DAY (-1 when no budget is set).",
            namespace=ns,
            registry=reg,
        )
        for outcome in REFRESH_OUTCOMES:  # show zeros before the first refresh
            self.refreshes.labels(outcome=outcome)
        for name in QUALITIES:
            self.cache_keys.labels(quality=name).set(0)
        if process_metrics:
            # process_* series; on platforms without /proc the collector yields nothing.
            ProcessCollector(registry=reg)

    def record_refresh(self, report: RefreshReport) -> None:
        """Count every outcome of a refresh call; time the fetches this call made itself."""
        for outcome in report.outcomes:
            self.refreshes.labels(outcome=_REPORT_STATUS[outcome.status]).inc()
            if outcome.status != "skipped_duplicate":
                self.fetch_latency.observe(max(0.0, outcome.duration_s))

    def set_cache_quality(self, counts: Mapping[str, int]) -> None:
        """Set the per-quality key counts; qualities not in ``counts`` are set to 0."""
        unknown = sorted(set(counts) - set(QUALITIES))
        if unknown:
            raise ValueError(f"unknown quality {unknown[0]!r}: expected one of {QUALITIES}")
        for name in QUALITIES:
            self.cache_keys.labels(quality=name).set(counts.get(name, 0))

    def set_credits(self, used_today: float, budget_per_day: float | None) -> None:
        """Credits spent today and the daily budget (-1: none)."""
        self.dune_credits_used.set(max(0.0, used_today))
        self.dune_credit_budget.set(-1.0 if budget_per_day is None else budget_per_day)

    def set_trigger_lag(self, seconds: float) -> None:
        self.trigger_lag.set(max(0.0, seconds))

    def trigger_processed(self, count: int = 1) -> None:
        self.triggers_processed.inc(count)

    def trigger_rejected(self, reason: str, count: int = 1) -> None:
        """``reason`` is a short fixed code (``malformed``, ``duplicate``, ``unknown_pool``...)."""
        self.triggers_rejected.labels(reason=reason).inc(count)

    def episode_finished(self, status: str) -> None:
        self.episodes.labels(status=status).inc()

    def set_episode_queue_depth(self, depth: int) -> None:
        self.episode_queue_depth.set(depth)

    def set_fetches_in_flight(self, count: int) -> None:
        self.fetches_in_flight.set(count)

    def exposition(self) -> bytes:
        """The Prometheus text format of this registry (``process_*`` reads /proc)."""
        return generate_latest(self.registry)


__all__ = ["FETCH_LATENCY_BUCKETS", "NAMESPACE", "ServiceMetrics"]
