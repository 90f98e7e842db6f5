"""DuneSource: the IntelSource adapter over DuneClient."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.scheduler.dune import DuneClient, ParamValue
from clmmd.scheduler.dune_source import DuneSource
from clmmd.scheduler.source import FetchRequest, IntelFetchError
from tests.fakes.dune_server import FakeDuneServer, Fault

KEY = "dune-SECRET-source-91b2"
QUERY = 77


def request(method: str, **extra: Any) -> FetchRequest:
    return FetchRequest(
        key="pool_metrics:0xabc:6h",
        query_name="pool_metrics",
        query_id=QUERY,
        method=method,  # type: ignore[arg-type]
        parameters={"pool_address": "0xabc", "window": "6h"},
        pool_address="0xabc",
        window="6h",
        **extra,
    )


@pytest.fixture
async def server() -> AsyncIterator[FakeDuneServer]:
    async with FakeDuneServer(KEY) as srv:
        srv.configure_query(QUERY, polls_until_done=2)
        yield srv


@pytest.fixture
async def source(server: FakeDuneServer) -> AsyncIterator[DuneSource]:
    clock = FakeClock()
    client = DuneClient(server.base_url, KEY, clock, rng=random.Random(0), max_retries=1)
    src = DuneSource(client, clock)
    yield src
    await src.close()


async def test_execute_method_runs_the_query(source: DuneSource, server: FakeDuneServer) -> None:
    result = await source.fetch(request("execute"))

    assert result.source == "dune_execute"
    assert len(result.data["rows"]) == 5
    assert result.data["rows"][0]["params"] == {"pool_address": "0xabc", "window": "6h"}
    assert result.data["partial"] is False
    assert server.count("execute") == 1
    assert server.count("latest") == 0


async def test_latest_method_reads_latest_results(
    source: DuneSource, server: FakeDuneServer
) -> None:
    result = await source.fetch(request("latest"))

    assert result.source == "dune_latest"
    assert len(result.data["rows"]) == 5
    assert server.count("execute") == 0
    (latest,) = server.requests_to("latest")
    assert latest.query["params.pool_address"] == "0xabc"
    assert latest.query["params.window"] == "6h"


async def test_api_errors_arrive_as_intel_fetch_errors(
    source: DuneSource, server: FakeDuneServer
) -> None:
    server.add_faults("execute", Fault.http(402, "credits exhausted for this cycle"))

    with pytest.raises(IntelFetchError) as caught:
        await source.fetch(request("execute"))

    assert caught.value.status == 402
    assert caught.value.retryable is False
    assert "credits exhausted for this cycle" in caught.value.message
    assert KEY not in caught.value.message


class BrokenClient:
    """A client failing in ways DuneClient never should, to prove the adapter's guarantee."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.closed = 0

    async def execute_query(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]:
        raise self.error

    async def latest_results(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]:
        raise self.error

    async def execute_sql(
        self, sql: str, *, label: str = "sql", deadline_s: float | None = None
    ) -> dict[str, Any]:
        raise self.error

    async def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyError("rows"), ValueError("bad")])
@pytest.mark.parametrize("method", ["execute", "latest"])
async def test_unexpected_exceptions_become_intel_fetch_errors(
    error: Exception, method: str
) -> None:
    source = DuneSource(BrokenClient(error), FakeClock())

    with pytest.raises(IntelFetchError) as caught:
        await source.fetch(request(method))

    assert type(caught.value) is IntelFetchError
    assert type(error).__name__ in caught.value.message
    assert caught.value.retryable is True


async def test_unknown_method_is_an_intel_fetch_error() -> None:
    source = DuneSource(BrokenClient(RuntimeError("not called")), FakeClock())
    with pytest.raises(IntelFetchError, match="unknown fetch method") as caught:
        await source.fetch(request("sideways"))
    assert caught.value.retryable is False


async def test_cancellation_is_not_swallowed() -> None:
    source = DuneSource(BrokenClient(asyncio.CancelledError()), FakeClock())
    with pytest.raises(asyncio.CancelledError):
        await source.fetch(request("execute"))


async def test_close_closes_the_client() -> None:
    client = BrokenClient(RuntimeError())
    source = DuneSource(client, FakeClock())
    await source.close()
    assert client.closed == 1


POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"


async def test_sql_method_sends_bound_shipped_sql_and_reports_asof_and_credits(
    server: FakeDuneServer,
) -> None:
    clock = FakeClock()
    server.wall_time = clock.now
    client = DuneClient(server.base_url, KEY, clock, rng=random.Random(0), max_retries=1)
    source = DuneSource(client, clock)
    req = FetchRequest(
        key=f"pool_health_score:{POOL}:1h",
        query_name="pool_health_score",
        query_id=None,
        method="sql",
        pool_address=POOL,
        window="1h",
    )
    try:
        result = await source.fetch(req)
    finally:
        await source.close()
    (sent,) = server.requests_to("sql")
    assert sent.body["performance"] == "medium"
    assert POOL in sent.body["sql"] and "{{" not in sent.body["sql"]
    assert server.sql_rejections == []
    assert result.source == "dune_sql"
    assert result.asof is not None and result.asof <= clock.now()
    assert result.credits is not None and result.credits >= 3.5  # the status's cost, plus reads
    assert result.data["rows"][0]["pool_address"] == POOL


async def test_latest_older_than_reexecute_after_is_executed_again(
    server: FakeDuneServer,
) -> None:
    clock = FakeClock()
    server.script(QUERY).latest_ended_at = "2026-01-01T00:00:00Z"
    clock.advance(2 * 86400)  # the stored latest result is now two days old
    server.wall_time = clock.now
    client = DuneClient(server.base_url, KEY, clock, rng=random.Random(0), max_retries=1)
    source = DuneSource(client, clock)
    try:
        kept = await source.fetch(request("latest"))
        assert kept.source == "dune_latest" and server.count("execute") == 0
        assert kept.asof is not None and (clock.now() - kept.asof).days == 2
        rerun = await source.fetch(request("latest", reexecute_after_s=86400))
    finally:
        await source.close()
    assert rerun.source == "dune_execute" and server.count("execute") == 1
    assert rerun.asof is not None and (clock.now() - rerun.asof).total_seconds() < 60
