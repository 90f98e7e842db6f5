"""Warming the intel cache with mock data before a mock campaign.

Mock intel is local and instant, so a campaign can start from a fresh snapshot. It is seeded
by the campaign seed (not the hour), and every key is rewritten, so the same seed gives the
same intel and therefore the same proposals and results whenever it runs.
"""

from __future__ import annotations

from clmmd.artifacts.base.clock import Clock
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.mock_source import MockSource
from clmmd.scheduler.planner import plan_pool_refresh
from clmmd.scheduler.refresher import Refresher, RefreshReport
from clmmd.scheduler.registry import PRIORITIES, Registry


async def warm_mock_intel(
    cache: IntelCache, registry: Registry, clock: Clock, pools: list[str], seed: int
) -> list[RefreshReport]:
    """Force-refresh every enabled key of ``pools`` from the mock source seeded by ``seed``."""
    refresher = Refresher(MockSource(clock, epoch=seed), cache, registry, clock)
    reports = []
    try:
        now = clock.now()
        for pool in pools:
            planned = plan_pool_refresh(registry, pool, {}, now, priorities=PRIORITIES, force=True)
            reports.append(await refresher.refresh(planned))
    finally:
        await refresher.close()
    return reports
