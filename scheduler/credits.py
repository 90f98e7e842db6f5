"""Dune credits: what a plan allows, what a fetch costs, and the daily budget.

Figures from Dune's documentation (docs.dune.com, "Rate Limits" and "Billing"; they change,
so each is overridable in the configuration):

* Rate limits per minute, low-limit endpoints (execute) / high-limit endpoints (status,
  results): free 15/40, plus 70/200, premium 350/1000; enterprise is negotiated (we assume
  premium's until told otherwise).
* An execution costs what its compute used; the status endpoint reports it as
  ``execution_cost_credits`` and we record that figure. When it is absent we estimate with the
  last published fixed prices: 10 credits on the medium engine, 20 on large. A failed
  execution may be charged too (timeouts, cancellations after compute); we count it.
* Reading results, by execution or as a query's latest result, is charged by size: credits
  per MB exported (free 20, plus 2; premium and enterprise assumed 2).

The daily total lives in the intel cache (``~meta:credits:<UTC date>``), so ``clmmd status``
in another process reads what the daemon spent, and a new total starts at UTC midnight.
:func:`apply_budget` is the pure rule that keeps a refresh inside ``DUNE_CREDIT_BUDGET_PER_DAY``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog

from clmmd.artifacts.base.clock import Clock, utc_iso
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.registry import PRIORITIES

log = structlog.get_logger(__name__)

Plan = Literal["free", "plus", "premium", "enterprise"]


@dataclass(frozen=True)
class PlanLimits:
    """What a Dune plan allows (before our safety margin)."""

    execute_rpm: int
    read_rpm: int
    credits_per_mb: float


PLANS: dict[Plan, PlanLimits] = {
    "free": PlanLimits(execute_rpm=15, read_rpm=40, credits_per_mb=20.0),
    "plus": PlanLimits(execute_rpm=70, read_rpm=200, credits_per_mb=2.0),
    "premium": PlanLimits(execute_rpm=350, read_rpm=1000, credits_per_mb=2.0),
    "enterprise": PlanLimits(execute_rpm=350, read_rpm=1000, credits_per_mb=2.0),
}
#: Fixed per-execution prices Dune published before usage-based pricing; our fallback estimate.
ENGINE_CREDITS: dict[str, float] = {"medium": 10.0, "large": 20.0}
#: Result size assumed for a key never fetched before (bytes).
DEFAULT_RESULT_BYTES = 20_000
_META_NAME = "credits:"
_KEEP_DAYS_S = 40 * 86_400


def execution_credits(reported: Any, performance: str) -> tuple[float, bool]:
    """``(credits, estimated)`` of one execution: Dune's figure when it gave one."""
    usable = isinstance(reported, int | float) and not isinstance(reported, bool)
    if usable and math.isfinite(reported) and reported >= 0:
        return float(reported), False
    return ENGINE_CREDITS.get(performance, ENGINE_CREDITS["medium"]), True


def export_credits(result_bytes: int, credits_per_mb: float) -> float:
    """Credits for reading ``result_bytes`` of results."""
    return max(0, result_bytes) / 1_000_000 * credits_per_mb


def day_of(moment: datetime) -> str:
    """The UTC date a moment counts towards (``YYYY-MM-DD``)."""
    return utc_iso(moment)[:10]


@dataclass(frozen=True)
class BudgetItem:
    """One planned fetch as the budget sees it."""

    key: str
    priority: str
    estimate: float


def apply_budget(
    items: Sequence[BudgetItem], remaining: float | None
) -> tuple[list[BudgetItem], dict[str, str]]:
    """Admit items highest priority first while their estimates fit in ``remaining``.

    Returns the admitted items (in the given order) and a reason for every skipped key. Once an
    item of some priority does not fit, every item of a lower priority is skipped as well, so
    P3 goes before P2, P2 before P1, P1 before P0. ``remaining=None``: no budget.
    """
    if remaining is None:
        return list(items), {}
    admitted: list[BudgetItem] = []
    skipped: dict[str, str] = {}
    left = remaining
    blocked_below: int | None = None
    for priority in PRIORITIES:
        rank = PRIORITIES.index(priority)
        for item in (i for i in items if i.priority == priority):
            if blocked_below is not None and rank > blocked_below:
                skipped[item.key] = (
                    f"credit budget: {priority} skipped after a "
                    f"{PRIORITIES[blocked_below]} fetch did not fit ({left:.1f} credits left today)"
                )
            elif item.estimate <= left:
                admitted.append(item)
                left -= item.estimate
            else:
                skipped[item.key] = (
                    f"credit budget: needs ~{item.estimate:.1f} credits, "
                    f"{left:.1f} left of today's budget"
                )
                blocked_below = rank if blocked_below is None else blocked_below
    order = {item.key: n for n, item in enumerate(items)}
    admitted.sort(key=lambda item: order[item.key])
    return admitted, skipped


class CreditLedger:
    """Credits spent today (UTC), kept in the intel cache; reservations for fetches in flight.

    ``charge`` is what the Dune client calls after every execution and every result read.
    ``reserve``/``release`` hold the estimate of an admitted fetch while it runs, so two
    refreshes running at once cannot both spend the last credits.
    """

    def __init__(self, cache: IntelCache, clock: Clock, budget_per_day: float | None) -> None:
        if budget_per_day is not None and budget_per_day < 0:
            raise ValueError(f"credit budget must be >= 0, got {budget_per_day}")
        self._cache = cache
        self._clock = clock
        self.budget_per_day = budget_per_day
        self._reserved: dict[str, float] = {}

    def today(self) -> dict[str, Any]:
        """``{"date", "used", "executions", "reads", "estimated"}`` for the current UTC day."""
        date = day_of(self._clock.now())
        doc = self._cache.get_meta(_META_NAME + date) or {}
        return {
            "date": date,
            "used": float(doc.get("used", 0.0)),
            "executions": int(doc.get("executions", 0)),
            "reads": int(doc.get("reads", 0)),
            "estimated": float(doc.get("estimated", 0.0)),
        }

    def used_today(self) -> float:
        return float(self.today()["used"])

    def remaining(self) -> float | None:
        """Credits left today after what is spent and reserved; None without a budget."""
        if self.budget_per_day is None:
            return None
        return self.budget_per_day - self.used_today() - sum(self._reserved.values())

    def reserve(self, key: str, estimate: float) -> None:
        self._reserved[key] = estimate

    def release(self, key: str) -> None:
        self._reserved.pop(key, None)

    async def charge(
        self, credits: float, *, kind: Literal["execution", "read"], estimated: bool, label: str
    ) -> None:
        """Add ``credits`` to today's total (logged with what they paid for)."""
        date = day_of(self._clock.now())

        def add(doc: dict[str, Any] | None) -> dict[str, Any]:
            doc = dict(doc or {})
            doc["date"] = date
            doc["used"] = round(float(doc.get("used", 0.0)) + credits, 6)
            counter = "executions" if kind == "execution" else "reads"
            doc[counter] = int(doc.get(counter, 0)) + 1
            if estimated:
                doc["estimated"] = round(float(doc.get("estimated", 0.0)) + credits, 6)
            return doc

        doc = await self._cache.update_meta(_META_NAME + date, add, expire=_KEEP_DAYS_S)
        log.info(
            "dune_credits_charged",
            credits=round(credits, 4),
            kind=kind,
            estimated=estimated,
            what=label,
            used_today=doc["used"],
            budget_per_day=self.budget_per_day,
        )

    def status(self) -> dict[str, Any]:
        """For ``clmmd status`` and ``/status``."""
        today = self.today()
        return {
            **today,
            "budget_per_day": self.budget_per_day,
            "remaining": None
            if self.budget_per_day is None
            else round(self.budget_per_day - today["used"], 4),
        }


Estimator = Callable[[Any, Any], float]
