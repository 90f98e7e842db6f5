"""Bounded, single-flight refreshes of cache keys from an :class:`IntelSource`.

* At most ``workers`` fetches run at once across every caller (scheduler ticks, triggers,
  ``refresh --once``): one semaphore per :class:`Refresher`.
* Within one :meth:`Refresher.refresh` call, fetches start in the order given: the call takes
  a worker slot for item *i* before item *i + 1*.
* Single flight: a call claims all its keys at once when it starts; from then until a key's
  fetch is stored, any other request for that key, from this call or another, awaits the same
  outcome instead of fetching again; it is reported as ``skipped_duplicate``.
* Every fetch has a deadline, so a hung source cannot hold a worker slot forever. Failures are
  recorded in the cache (stale-if-error), never raised. Cache writes are shielded from
  cancellation so a stopping tick cannot leave a half-recorded refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.scheduler.cache import Envelope, IntelCache
from clmmd.scheduler.credits import BudgetItem, CreditLedger, apply_budget
from clmmd.scheduler.planner import PlannedFetch, candidate_requests, plan_refresh
from clmmd.scheduler.query_rows import RowShapeError, normalise_rows
from clmmd.scheduler.registry import Registry
from clmmd.scheduler.source import FetchRequest, FetchResult, IntelFetchError, IntelSource

log = structlog.get_logger(__name__)

OutcomeStatus = Literal["ok", "failed", "skipped_duplicate", "skipped_budget"]


@dataclass(frozen=True)
class FetchOutcome:
    """What happened to one requested key. A duplicate carries the shared fetch's error."""

    key: str
    status: OutcomeStatus
    duration_s: float
    error: str | None = None


@dataclass(frozen=True)
class RefreshReport:
    """The outcome of one :meth:`Refresher.refresh` call, in request order."""

    outcomes: tuple[FetchOutcome, ...]
    peak_concurrency: int

    def count(self, status: OutcomeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped_duplicate")

    @property
    def skipped_budget(self) -> int:
        return self.count("skipped_budget")

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": len(self.outcomes),
            "ok": self.ok,
            "failed": self.failed,
            "skipped_duplicate": self.skipped,
            "skipped_budget": self.skipped_budget,
            "peak_concurrency": self.peak_concurrency,
            "outcomes": [
                {"key": o.key, "status": o.status, "duration_s": o.duration_s, "error": o.error}
                for o in self.outcomes
            ],
        }


@dataclass
class _CallStats:
    peak: int = 0
    owned_waiting: set[str] = field(default_factory=set)


class Refresher:
    """Fetches planned keys into the cache; see the module docstring for the guarantees."""

    def __init__(
        self,
        source: IntelSource,
        cache: IntelCache,
        registry: Registry,
        clock: Clock,
        *,
        workers: int = 3,
        fetch_timeout_s: float = 60,
        ledger: CreditLedger | None = None,
        estimate: Callable[[FetchRequest, Envelope | None], float] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if fetch_timeout_s <= 0:
            raise ValueError(f"fetch_timeout_s must be > 0, got {fetch_timeout_s}")
        self._source = source
        self._cache = cache
        self._registry = registry
        self._clock = clock
        self.workers = workers
        self.fetch_timeout_s = fetch_timeout_s
        self._slots = asyncio.Semaphore(workers)
        self._claims: dict[str, asyncio.Future[FetchOutcome]] = {}
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._peak = 0
        # Without a ledger there is no budget; without an estimator fetches are free (mock).
        self._ledger = ledger
        self._estimate = estimate

    @property
    def in_flight(self) -> frozenset[str]:
        """Keys being fetched right now."""
        return frozenset(self._running)

    @property
    def pending(self) -> frozenset[str]:
        """Keys claimed by a refresh call and waiting for a worker slot."""
        return frozenset(self._claims) - self._running

    @property
    def peak_in_flight(self) -> int:
        """The most fetches ever running at once in this refresher."""
        return self._peak

    async def refresh(self, planned: Sequence[PlannedFetch]) -> RefreshReport:
        """Fetch ``planned`` in order, at most ``workers`` at once; never raises for a fetch."""
        planned, over_budget = self._within_budget(planned)
        loop = asyncio.get_running_loop()
        stats = _CallStats()
        waits: list[asyncio.Future[FetchOutcome]] = []
        duplicate: list[bool] = []
        owned: list[tuple[PlannedFetch, asyncio.Future[FetchOutcome]]] = []
        # Claim every key of this call before waiting for any slot (no await in this loop), so
        # a key queued here is never fetched a second time by a call that arrives meanwhile.
        for item in planned:
            existing = self._claims.get(item.key)
            if existing is not None:
                waits.append(existing)
                duplicate.append(True)
                continue
            claim: asyncio.Future[FetchOutcome] = loop.create_future()
            self._claims[item.key] = claim
            stats.owned_waiting.add(item.key)
            owned.append((item, claim))
            waits.append(claim)
            duplicate.append(False)
        try:
            for item, claim in owned:
                await self._slots.acquire()
                stats.owned_waiting.discard(item.key)
                task = asyncio.create_task(self._run(item, claim, stats))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            # Cancelled while queued: release the claims nobody started, so waiters move on.
            for key in stats.owned_waiting:
                released = self._claims.pop(key)
                released.set_result(FetchOutcome(key, "failed", 0.0, "cancelled before start"))
        shared = [await asyncio.shield(w) for w in waits]
        outcomes = tuple(
            FetchOutcome(o.key, "skipped_duplicate", o.duration_s, o.error) if dup else o
            for o, dup in zip(shared, duplicate, strict=True)
        ) + tuple(over_budget)
        report = RefreshReport(outcomes, stats.peak)
        if outcomes:
            log.info(
                "refresh_done",
                requested=len(outcomes),
                ok=report.ok,
                failed=report.failed,
                skipped_duplicate=report.skipped,
                skipped_budget=report.skipped_budget,
                peak_concurrency=report.peak_concurrency,
            )
        return report

    def _within_budget(
        self, planned: Sequence[PlannedFetch]
    ) -> tuple[list[PlannedFetch], list[FetchOutcome]]:
        """The planned fetches today's credit budget allows (reserving their estimates), and
        an outcome for each one it does not, lowest priority first (see credits.apply_budget)."""
        if self._ledger is None or self._ledger.budget_per_day is None or not planned:
            return list(planned), []
        items = [BudgetItem(p.key, p.priority, self._estimate_of(p)) for p in planned]
        admitted, reasons = apply_budget(items, self._ledger.remaining())
        for budgeted in admitted:
            self._ledger.reserve(budgeted.key, budgeted.estimate)
        skipped = []
        for item in planned:
            if item.key in reasons:
                log.warning(
                    "refresh_skipped_budget",
                    key=item.key,
                    priority=item.priority,
                    reason=reasons[item.key],
                )
                skipped.append(FetchOutcome(item.key, "skipped_budget", 0.0, reasons[item.key]))
        keep = {item.key for item in admitted}
        return [p for p in planned if p.key in keep], skipped

    def _estimate_of(self, item: PlannedFetch) -> float:
        if self._estimate is None:
            return 0.0
        return self._estimate(item.request, self._cache.get_envelope(item.key))

    async def refresh_once(
        self,
        active_pools: Sequence[str],
        *,
        pool_cap: int = 3,
        priorities: Iterable[str] | None = None,
    ) -> RefreshReport:
        """Plan against the current cache and refresh what is due (``clmmd refresh --once``)."""
        wanted = None if priorities is None else set(priorities)
        candidates = candidate_requests(
            self._registry, active_pools, priorities=wanted, pool_cap=pool_cap
        )
        envelopes = {req.key: self._cache.get_envelope(req.key) for _, req in candidates}
        planned = plan_refresh(
            self._registry,
            active_pools,
            envelopes,
            self._clock.now(),
            priorities=wanted,
            pool_cap=pool_cap,
        )
        return await self.refresh(planned)

    async def close(self) -> None:
        """Cancel fetches still running (shutdown); their claims resolve as failed."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self, item: PlannedFetch, claim: asyncio.Future[FetchOutcome], stats: _CallStats
    ) -> None:
        key = item.key
        self._running.add(key)
        self._peak = max(self._peak, len(self._running))
        stats.peak = max(stats.peak, len(self._running))
        started = self._clock.monotonic()
        outcome: FetchOutcome | None = None
        try:
            outcome = await self._fetch_and_store(item, started)
        finally:
            if self._ledger is not None:
                self._ledger.release(key)
            self._running.discard(key)
            self._slots.release()
            if self._claims.get(key) is claim:
                del self._claims[key]
            if not claim.done():
                elapsed = round(self._clock.monotonic() - started, 3)
                claim.set_result(outcome or FetchOutcome(key, "failed", elapsed, "cancelled"))

    async def _fetch_and_store(self, item: PlannedFetch, started: float) -> FetchOutcome:
        key, spec = item.key, item.spec
        error: str
        try:
            async with asyncio.timeout(self.fetch_timeout_s):
                result = await self._source.fetch(item.request)
            _check_result(result)
            # Rows become typed values here, once: a wrong shape is this key's error.
            rows = normalise_rows(spec.name, result.data["rows"])
        except IntelFetchError as exc:
            error = exc.message
        except RowShapeError as exc:
            error = f"wrong result shape: {exc}"
            log.error(
                "refresh_result_shape_wrong",
                key=key,
                query=exc.query,
                column=exc.column,
                error=str(exc),
                hint="the query's SQL and its row model (scheduler/query_rows.py) disagree",
            )
        except TimeoutError:
            error = f"fetch timed out after {self.fetch_timeout_s:g}s"
        except Exception as exc:  # the source broke its contract; still never crash a tick
            error = f"unexpected {type(exc).__name__}: {exc}"
            log.error(
                "refresh_source_contract_broken",
                key=key,
                error=error,
                hint="a bug in the intel source: report it; the key keeps its last good data",
            )
        else:
            try:
                await asyncio.shield(
                    self._cache.record_success(
                        key,
                        {**result.data, "rows": rows},
                        source=result.source,
                        now=self._clock.now(),
                        ttl_s=spec.ttl_seconds,
                        max_age_s=spec.max_age_seconds,
                        asof=result.asof,
                        credits=result.credits,
                    )
                )
            except Exception as exc:
                error = f"cache write failed: {type(exc).__name__}: {exc}"
                log.error(
                    "refresh_cache_write_failed",
                    key=key,
                    error=error,
                    hint="check disk space and permissions of <data_dir>/cache",
                )
                return FetchOutcome(key, "failed", self._elapsed(started), error)
            duration = self._elapsed(started)
            log.info("refresh_fetch_ok", key=key, reason=item.reason, duration_s=duration)
            return FetchOutcome(key, "ok", duration)

        duration = self._elapsed(started)
        log.warning("refresh_fetch_failed", key=key, error=error, duration_s=duration)
        try:
            await asyncio.shield(
                self._cache.record_failure(
                    key,
                    error,
                    self._clock.now(),
                    spec.ttl_seconds,
                    max_age_s=spec.max_age_seconds,
                )
            )
        except Exception as exc:
            log.error(
                "refresh_cache_write_failed",
                key=key,
                error=f"{type(exc).__name__}: {exc}",
                hint="check disk space and permissions of <data_dir>/cache",
            )
        return FetchOutcome(key, "failed", duration, error)

    def _elapsed(self, started: float) -> float:
        return round(self._clock.monotonic() - started, 3)


def _check_result(result: FetchResult) -> None:
    data = result.data
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise IntelFetchError("source returned data without a 'rows' list", retryable=True)
