"""A pool's raw Uniswap V3 Swap events from Dune, page by page, for replaying a market.

The public entry point for the replay side (which must not import the scheduler: the service
layer passes :func:`pool_swap_pages` in). It runs the shipped ``pool_swaps`` SQL for an explicit
``[start, end)`` range through Dune's Execute SQL endpoint and yields typed rows, in the order
the pool applied them (block number, then log index), one result page at a time so months of
swaps never sit in memory at once. Long histories are best fetched in windows of a few days or
weeks (each a separate execution), which also bounds what a failed execution costs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import cast

from clmmd.scheduler.dune import DuneClient
from clmmd.scheduler.query_rows import PoolSwapsRow, parse_rows
from clmmd.scheduler.shipped_sql import shipped_query


async def pool_swap_pages(
    client: DuneClient,
    pool_address: str,
    start: datetime,
    end: datetime,
    *,
    deadline_s: float | None = None,
) -> AsyncIterator[list[PoolSwapsRow]]:
    """Swap events of ``pool_address`` with ``start <= block_time < end``, a page at a time.

    ``start``/``end`` must be timezone-aware. Raises ``QueryParameterError`` for a bad pool or
    time, ``RowShapeError`` if Dune's columns do not match :class:`PoolSwapsRow`, and the
    client's :class:`~scheduler.dune_errors.DuneError` for API failures.
    """
    if end <= start:
        raise ValueError(f"pool_swap_pages: end {end} is not after start {start}")
    sql = shipped_query("pool_swaps").bind(
        {"pool_address": pool_address, "start_time": start, "end_time": end}
    )
    label = f"pool_swaps {pool_address.lower()} {start.isoformat()}..{end.isoformat()}"
    async for page in client.iter_sql_pages(sql, label=label, deadline_s=deadline_s):
        yield cast(list[PoolSwapsRow], parse_rows("pool_swaps", page.rows))
