"""pool_swap_pages: the shipped pool_swaps SQL over an explicit range, typed, page by page."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.scheduler.dune import DuneClient
from clmmd.scheduler.query_rows import RowShapeError
from clmmd.scheduler.shipped_sql import QueryParameterError
from clmmd.scheduler.swap_history import pool_swap_pages
from tests.fakes.dune_server import FakeDuneServer

KEY = "fake-swap-history-key-000000"
POOL = "0x88E6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
START = datetime(2025, 1, 1, tzinfo=UTC)
BIG = 2**159 + 12345  # a uint160 that a double or BIGINT would mangle


def swap(n: int) -> dict[str, object]:
    return {
        "block_time": "2025-01-01 00:00:12.000 UTC",
        "block_number": 21_000_000 + n // 3,
        "log_index": n % 3,
        "tx_hash": f"0x{n:064x}",
        "amount0": str(-(10**30) - n),
        "amount1": "5",
        "sqrt_price_x96": str(BIG),
        "liquidity": str(2**127),
        "tick": -887_000 + n,
    }


@pytest.fixture
async def server() -> AsyncIterator[FakeDuneServer]:
    async with FakeDuneServer(KEY) as srv:
        yield srv


async def test_pages_of_typed_swaps_in_pool_order(server: FakeDuneServer) -> None:
    server.sql_rows = lambda _sql: [swap(n) for n in range(10)]
    client = DuneClient(server.base_url, KEY, FakeClock(), rng=random.Random(0), page_size=4)
    try:
        pages = [p async for p in pool_swap_pages(client, POOL, START, START + timedelta(days=31))]
    finally:
        await client.close()
    assert [len(p) for p in pages] == [4, 4, 2]
    rows = [r for page in pages for r in page]
    assert [(r.block_number, r.log_index) for r in rows] == sorted(
        (r.block_number, r.log_index) for r in rows
    )
    assert rows[0].sqrt_price_x96 == BIG and rows[0].amount0 == -(10**30)
    assert rows[0].block_time == datetime(2025, 1, 1, 0, 0, 12, tzinfo=UTC)
    (sent,) = server.requests_to("sql")
    assert "TIMESTAMP '2025-02-01 00:00:00 UTC'" in sent.body["sql"]
    assert POOL.lower() in sent.body["sql"] and server.sql_rejections == []


async def test_bad_inputs_and_shapes_are_refused(server: FakeDuneServer) -> None:
    client = DuneClient(server.base_url, KEY, FakeClock(), rng=random.Random(0))
    try:
        with pytest.raises(QueryParameterError, match="pool_address"):
            [p async for p in pool_swap_pages(client, "0x12", START, START + timedelta(1))]
        with pytest.raises(ValueError, match="not after"):
            [p async for p in pool_swap_pages(client, POOL, START, START)]
        server.sql_rows = lambda _sql: [{k: v for k, v in swap(0).items() if k != "tick"}]
        with pytest.raises(RowShapeError, match="column 'tick': missing"):
            [p async for p in pool_swap_pages(client, POOL, START, START + timedelta(1))]
    finally:
        await client.close()
