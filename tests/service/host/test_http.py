from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from clmmd.scheduler.refresher import FetchOutcome, RefreshReport
from clmmd.service.host.http import DEFAULT_HOST, StatusServer
from clmmd.service.host.metrics import ServiceMetrics
from clmmd.service.logging import SecretRedactor
from tests.conftest import CapturedLogs

SECRET = "dune-key-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition as {(name, sorted labels): value}."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


Factory = Callable[..., StatusServer]


@pytest.fixture
async def make_server() -> AsyncIterator[Factory]:
    made: list[StatusServer] = []

    def factory(
        metrics: ServiceMetrics | None = None,
        status: Callable[[], dict[str, Any]] = lambda: {"state": "running"},
        **kwargs: Any,
    ) -> StatusServer:
        server = StatusServer(metrics or ServiceMetrics(), status, port=0, **kwargs)
        made.append(server)
        return server

    yield factory
    for server in made:
        await server.stop()


async def get(server: StatusServer, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url + path, timeout=aiohttp.ClientTimeout(total=5)) as resp,
    ):
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def test_binds_localhost_on_a_real_port_and_stops_idempotently(
    make_server: Factory,
) -> None:
    server = make_server()
    assert server.host == DEFAULT_HOST == "127.0.0.1"
    await server.start()
    assert server.port > 0
    status, ctype, body = await get(server, "/healthz")
    assert (status, body.replace(" ", "").replace("\n", "")) == (200, '{"status":"ok"}')
    assert ctype.startswith("application/json")
    with pytest.raises(RuntimeError, match="already started"):
        await server.start()
    assert (await get(server, "/nope"))[0] == 404
    async with aiohttp.ClientSession() as session, session.post(server.url + "/status") as resp:
        assert resp.status == 405
    await server.stop()
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(server, "/healthz")


async def test_healthz_reports_reasons_with_503(
    make_server: Factory, captured_logs: CapturedLogs
) -> None:
    reasons: list[str] = []
    server = make_server(health=lambda: reasons)
    await server.start()
    assert (await get(server, "/healthz"))[0] == 200
    reasons.extend(["refresh scheduler stopped", "no fresh P0 data"])
    status, _, body = await get(server, "/healthz")
    assert status == 503
    assert '"degraded"' in body and "refresh scheduler stopped" in body
    assert "no fresh P0 data" in body


async def test_a_failing_health_check_is_unhealthy_without_its_message(
    make_server: Factory, captured_logs: CapturedLogs
) -> None:
    def broken() -> list[str]:
        raise RuntimeError(f"could not reach dune with key {SECRET}")

    redactor = SecretRedactor()
    redactor.register(SECRET)
    server = make_server(health=broken, redactor=redactor)
    await server.start()
    status, _, body = await get(server, "/healthz")
    assert status == 503 and "RuntimeError" in body and SECRET not in body
    assert len(captured_logs.events("health_check_failed")) == 1
    assert SECRET not in captured_logs.text


async def test_metrics_exposition_reflects_updates(make_server: Factory) -> None:
    metrics = ServiceMetrics()
    scrapes: list[int] = []
    server = make_server(metrics, on_scrape=lambda: scrapes.append(1))
    await server.start()
    report = RefreshReport(
        (
            FetchOutcome("a", "ok", 0.3),
            FetchOutcome("b", "ok", 7.0),
            FetchOutcome("c", "failed", 60.0, "timed out"),
            FetchOutcome("a", "skipped_duplicate", 0.3),
        ),
        peak_concurrency=2,
    )
    metrics.record_refresh(report)
    metrics.set_cache_quality({"fresh": 7, "stale": 2})
    metrics.set_trigger_lag(4.5)
    metrics.trigger_processed()
    metrics.trigger_processed(2)
    metrics.trigger_rejected("malformed")
    metrics.episode_finished("completed")
    metrics.episode_finished("completed")
    metrics.episode_finished("failed")
    metrics.set_episode_queue_depth(5)
    metrics.set_fetches_in_flight(3)

    status, ctype, body = await get(server, "/metrics")
    assert status == 200 and ctype == CONTENT_TYPE_LATEST and scrapes == [1]
    got = samples(body)
    assert got[("clmmd_refreshes_total", (("outcome", "ok"),))] == 2
    assert got[("clmmd_refreshes_total", (("outcome", "failed"),))] == 1
    assert got[("clmmd_refreshes_total", (("outcome", "skipped"),))] == 1
    assert got[("clmmd_fetch_latency_seconds_count", ())] == 3
    assert got[("clmmd_fetch_latency_seconds_sum", ())] == pytest.approx(67.3)
    assert got[("clmmd_fetch_latency_seconds_bucket", (("le", "5.0"),))] == 1
    assert got[("clmmd_cache_keys", (("quality", "fresh"),))] == 7
    assert got[("clmmd_cache_keys", (("quality", "stale"),))] == 2
    assert got[("clmmd_cache_keys", (("quality", "missing"),))] == 0
    assert got[("clmmd_trigger_lag_seconds", ())] == 4.5
    assert got[("clmmd_triggers_processed_total", ())] == 3
    assert got[("clmmd_triggers_rejected_total", (("reason", "malformed"),))] == 1
    assert got[("clmmd_episodes_total", (("status", "completed"),))] == 2
    assert got[("clmmd_episodes_total", (("status", "failed"),))] == 1
    assert got[("clmmd_episode_queue_depth", ())] == 5
    assert got[("clmmd_fetches_in_flight", ())] == 3
    if sys.platform == "linux":
        assert got[("process_resident_memory_bytes", ())] > 0

    metrics.set_cache_quality({"too_old": 1})  # qualities left out drop to zero
    got = samples((await get(server, "/metrics"))[2])
    assert got[("clmmd_cache_keys", (("quality", "fresh"),))] == 0
    assert got[("clmmd_cache_keys", (("quality", "too_old"),))] == 1
    assert scrapes == [1, 1]


async def test_a_failing_scrape_hook_still_serves_metrics(
    make_server: Factory, captured_logs: CapturedLogs
) -> None:
    def hook() -> None:
        raise OSError("cache unreadable")

    server = make_server(on_scrape=hook)
    await server.start()
    status, _, body = await get(server, "/metrics")
    assert status == 200 and "clmmd_refreshes_total" in body
    assert len(captured_logs.events("metrics_scrape_hook_failed")) == 1


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = ServiceMetrics(), ServiceMetrics(process_metrics=False)
    first.trigger_processed(4)
    assert samples(first.exposition().decode())[("clmmd_triggers_processed_total", ())] == 4
    other = samples(second.exposition().decode())
    assert other[("clmmd_triggers_processed_total", ())] == 0
    assert not any(name.startswith("process_") for name, _ in other)


def test_cache_quality_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown quality 'rotten'"):
        ServiceMetrics(process_metrics=False).set_cache_quality({"rotten": 1})


async def test_status_serves_the_provider_document(make_server: Factory) -> None:
    document = {
        "mode": "mock",
        "scheduler": {"ticks": 3, "in_flight": ["gas_regime"], "last_tick_at": None},
        "started_at": datetime(2026, 1, 1, tzinfo=UTC),
        "workers": 3,
    }
    server = make_server(status=lambda: document)
    await server.start()
    status, ctype, body = await get(server, "/status")
    assert status == 200 and ctype.startswith("application/json")
    served = orjson.loads(body)
    assert served == {**document, "started_at": "2026-01-01T00:00:00+00:00"}


async def test_status_never_serves_secrets(make_server: Factory) -> None:
    redactor = SecretRedactor()
    redactor.register(SECRET)

    class Opaque:
        def __str__(self) -> str:
            return f"Client(key={SECRET})"

    document = {
        "config": {"dune_api_key": "whatever-it-is", "gateway_url": "http://localhost:15888"},
        "last_error": f"HTTP 401 for key {SECRET}",
        "client": Opaque(),
    }
    server = make_server(status=lambda: document, redactor=redactor)
    await server.start()
    status, _, body = await get(server, "/status")
    assert status == 200
    assert SECRET not in body and "whatever-it-is" not in body
    assert "http://localhost:15888" in body and "HTTP 401 for key ***" in body


async def test_a_failing_status_provider_is_a_500_without_details(
    make_server: Factory, captured_logs: CapturedLogs
) -> None:
    def broken() -> dict[str, Any]:
        raise KeyError(SECRET)

    redactor = SecretRedactor()
    redactor.register(SECRET)
    server = make_server(status=broken, redactor=redactor)
    await server.start()
    status, _, body = await get(server, "/status")
    assert status == 500 and "KeyError" in body and SECRET not in body
    assert len(captured_logs.events("status_provider_failed")) == 1
    assert SECRET not in captured_logs.text


def test_port_is_validated() -> None:
    with pytest.raises(ValueError, match="port"):
        StatusServer(ServiceMetrics(process_metrics=False), dict, port=70000)
