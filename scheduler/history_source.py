"""Dune as a page source of the history store (:class:`env.history_store.PageSource`).

One page is one UTC day of a pool's Swap events: one Execute SQL run of the shipped
``pool_swaps`` query (:func:`scheduler.swap_history.pool_swap_pages`), its result read page by
page and checked like every other history (:func:`env.history.make_history`). Before each day
the daily credit budget is consulted: a fetch that would start with the budget spent stops with
:class:`CreditBudgetSpent`, and since the store keeps every finished day, running it again
another day carries on where it stopped.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from clmmd.env.base import PoolSpec
from clmmd.env.history import SwapHistory, make_history
from clmmd.scheduler.credits import CreditLedger
from clmmd.scheduler.dune import DuneClient
from clmmd.scheduler.query_rows import PoolSwapsRow
from clmmd.scheduler.swap_history import pool_swap_pages


class CreditBudgetSpent(Exception):
    """The daily Dune credit budget is used up; ``str()`` says so in one line."""


class DuneHistorySource:
    """Day pages of Swap events from Dune (the client is shared; :meth:`close` closes it)."""

    def __init__(
        self,
        client: DuneClient,
        ledger: CreditLedger | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._deadline_s = deadline_s

    @property
    def name(self) -> str:
        return "Dune (pool_swaps)"

    async def fetch_page(self, pool: PoolSpec, start_s: int, end_s: int) -> SwapHistory:
        """Every Swap event with ``start_s <= block_time < end_s``, checked."""
        if self._ledger is not None:
            remaining = await asyncio.to_thread(self._ledger.remaining)  # reads the cache
            if remaining is not None and remaining <= 0:
                raise CreditBudgetSpent(
                    "the daily Dune credit budget is spent (DUNE_CREDIT_BUDGET_PER_DAY); the "
                    "days fetched so far are stored: run it again after UTC midnight to carry on"
                )
        rows: list[PoolSwapsRow] = []
        start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
        async for page in pool_swap_pages(
            self._client, pool.address, start, end, deadline_s=self._deadline_s
        ):
            rows.extend(page)
        return make_history(
            [int(r.block_time.timestamp()) for r in rows],
            [r.block_number for r in rows],
            [r.log_index for r in rows],
            [r.amount0 for r in rows],
            [r.amount1 for r in rows],
            [r.sqrt_price_x96 for r in rows],
            [r.liquidity for r in rows],
            [r.tick for r in rows],
        )

    async def close(self) -> None:
        await self._client.close()
