"""DuneClient against the fake Dune server, with a FakeClock (no real waiting but the
fake server's own network latency and the deliberately short call timeouts)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs

from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.base.ratelimit import SlidingWindowLimiter
from clmmd.scheduler.dune import (
    DuneApiError,
    DuneClient,
    DuneDeadlineError,
    DuneExecutionError,
)
from clmmd.scheduler.source import IntelFetchError
from tests.fakes.dune_server import (
    CANCELED,
    CANCELLED,
    COMPLETED_PARTIAL,
    EXPIRED,
    FAILED,
    FakeDuneServer,
    Fault,
)

KEY = "dune-SECRET-4f9c2a7e-key"
QUERY = 4242


class MaxRandom(random.Random):
    """Jitter that always picks the ceiling, so backoff values are exact and assertable."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[FakeDuneServer]:
    async with FakeDuneServer(KEY, time_source=clock.monotonic) as srv:
        srv.configure_query(QUERY, polls_until_done=1)
        yield srv


@pytest.fixture
async def make_client(
    server: FakeDuneServer, clock: FakeClock
) -> AsyncIterator[Callable[..., DuneClient]]:
    clients: list[DuneClient] = []

    def make(**overrides: Any) -> DuneClient:
        settings: dict[str, Any] = {"rng": MaxRandom(), "call_timeout_s": 2.0}
        settings.update(overrides)
        base_url = settings.pop("base_url", server.base_url)
        api_key = settings.pop("api_key", KEY)
        client = DuneClient(base_url, api_key, clock, **settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def rows_of(query_id: int, count: int) -> list[dict[str, Any]]:
    return [{"query_id": query_id, "n": i, "value": i * i} for i in range(count)]


async def run_for(client: DuneClient, endpoint: str) -> dict[str, Any]:
    """Exercise ``endpoint``: latest results for "latest", a full execution otherwise."""
    if endpoint == "latest":
        return await client.latest_results(QUERY, {"pool": "0xabc"})
    return await client.execute_query(QUERY, {"pool": "0xabc"})


# Requests per endpoint of one clean run_for() with polls_until_done=1 and one page.
CLEAN_COUNTS = {"execute": 1, "status": 1, "results": 1, "latest": 1}


def assert_no_secret(*things: object) -> None:
    for thing in things:
        assert KEY not in str(thing)
        assert KEY not in repr(thing)


# --------------------------------------------------------------------------- happy paths


async def test_execute_polls_until_completed_and_returns_rows(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    server.configure_query(QUERY, rows=rows_of(QUERY, 3), polls_until_done=3)
    client = make_client(poll_interval_s=1.0, poll_growth=1.5)

    data = await client.execute_query(QUERY, {"pool": "0xabc", "window": "1h", "n": 3})

    assert data["rows"] == rows_of(QUERY, 3)
    assert data["partial"] is False
    assert data["execution_id"] in server.executions
    assert data["metadata"]["total_row_count"] == 3
    (execute,) = server.requests_to("execute")
    assert execute.body == {
        "query_parameters": {"pool": "0xabc", "window": "1h", "n": 3},
        "performance": "medium",
    }
    assert all(r.had_valid_key for r in server.requests)
    assert server.count("status") == 3  # PENDING, EXECUTING, COMPLETED
    assert clock.slept == [1.0, 1.5]  # the poll interval grows


async def test_poll_interval_growth_is_capped(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    server.configure_query(QUERY, polls_until_done=6)
    client = make_client(poll_interval_s=1.0, poll_growth=2.0, poll_interval_max_s=3.0)
    await client.execute_query(QUERY)
    assert clock.slept == [1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("paging", ["next_uri", "offset_only", "foreign_next_uri"])
async def test_paging_assembles_all_rows_in_order(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], paging: str
) -> None:
    if paging == "offset_only":
        server.next_uri_base = ""
    elif paging == "foreign_next_uri":
        # The key must never be sent elsewhere: the client pages by offset instead.
        server.next_uri_base = "http://127.0.0.2:9/api/v1"
    server.configure_query(QUERY, rows=rows_of(QUERY, 23))
    client = make_client(page_size=5)

    data = await client.execute_query(QUERY)

    assert data["rows"] == rows_of(QUERY, 23)
    offsets = [r.query["offset"] for r in server.requests_to("results")]
    assert offsets == ["0", "5", "10", "15", "20"]
    assert data["metadata"]["row_count"] == 5  # metadata is the first page's


async def test_latest_results_sends_params_and_pages(
    server: FakeDuneServer, make_client: Callable[..., DuneClient]
) -> None:
    seen: list[dict[str, str]] = []

    def generate(params: dict[str, str]) -> list[dict[str, Any]]:
        seen.append(params)
        return rows_of(QUERY, 7)

    server.configure_query(QUERY, rows=generate)
    client = make_client(page_size=3)

    data = await client.latest_results(QUERY, {"pool": "0xabc", "window": "6h", "k": 2.5})

    assert data["rows"] == rows_of(QUERY, 7)
    assert data["partial"] is False
    assert server.count("latest") == 3
    assert server.count("execute") == 0
    assert all(p == {"pool": "0xabc", "window": "6h", "k": "2.5"} for p in seen)


async def test_completed_partial_is_flagged_and_rows_kept(
    server: FakeDuneServer, make_client: Callable[..., DuneClient]
) -> None:
    server.configure_query(
        QUERY, rows=rows_of(QUERY, 4), final_state=COMPLETED_PARTIAL, latest_state=COMPLETED_PARTIAL
    )
    client = make_client(page_size=3)

    executed = await client.execute_query(QUERY)
    latest = await client.latest_results(QUERY)

    assert executed["partial"] is True
    assert executed["rows"] == rows_of(QUERY, 4)
    assert latest["partial"] is True
    assert latest["rows"] == rows_of(QUERY, 4)


# --------------------------------------------------------------------------- execution states


@pytest.mark.parametrize(
    ("state", "error", "expected_text", "retryable"),
    [
        (FAILED, {"type": "FAILED_TYPE_EXECUTION_FAILED", "message": "Query timed out"},
         "Query timed out", False),
        (FAILED, "column foo does not exist", "column foo does not exist", False),
        (EXPIRED, None, "expired", True),
        (CANCELLED, None, "cancelled", True),
        (CANCELED, None, "cancelled", True),
    ],
)  # fmt: skip
async def test_terminal_failure_states_raise_with_dune_text(
    server: FakeDuneServer,
    make_client: Callable[..., DuneClient],
    state: str,
    error: Any,
    expected_text: str,
    retryable: bool,
) -> None:
    server.configure_query(QUERY, polls_until_done=2, final_state=state, error=error)
    client = make_client()

    with pytest.raises(DuneExecutionError) as caught:
        await client.execute_query(QUERY)

    assert expected_text in caught.value.message
    assert state in caught.value.message
    assert caught.value.state == state
    assert caught.value.retryable is retryable
    assert server.count("results") == 0


@pytest.mark.parametrize("endpoint", ["status", "latest"])
async def test_unknown_state_is_an_error_not_a_crash(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], endpoint: str
) -> None:
    server.configure_query(
        QUERY, final_state="QUERY_STATE_EXPLODED", latest_state="QUERY_STATE_EXPLODED"
    )
    client = make_client()

    with pytest.raises(DuneExecutionError, match="unknown execution state 'QUERY_STATE_EXPLODED'"):
        await run_for(client, endpoint)

    assert server.count("results") == 0


# --------------------------------------------------------------------------- retries


RETRYABLE_FAULTS = {
    "429": Fault.http(429),
    "500": Fault.http(500),
    "502": Fault.http(502),
    "503": Fault.http(503),
    "malformed": Fault.malformed(),
}


@pytest.mark.parametrize("endpoint", ["execute", "status", "results", "latest"])
@pytest.mark.parametrize("fault_name", sorted(RETRYABLE_FAULTS))
async def test_transient_fault_is_retried_once_with_backoff(
    server: FakeDuneServer,
    make_client: Callable[..., DuneClient],
    clock: FakeClock,
    endpoint: str,
    fault_name: str,
) -> None:
    server.configure_query(QUERY, rows=rows_of(QUERY, 2))
    server.add_faults(endpoint, RETRYABLE_FAULTS[fault_name])  # type: ignore[arg-type]
    client = make_client(backoff_base_s=0.5)

    data = await run_for(client, endpoint)

    assert data["rows"] == rows_of(QUERY, 2)
    assert server.count(endpoint) == CLEAN_COUNTS[endpoint] + 1  # type: ignore[arg-type]
    assert clock.slept == [0.5]  # first backoff ceiling = base (jitter pinned to the ceiling)


@pytest.mark.parametrize("endpoint", ["execute", "status", "latest"])
async def test_timeout_is_retried(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], endpoint: str
) -> None:
    server.add_faults(endpoint, Fault.timeout(5.0))  # type: ignore[arg-type]
    client = make_client(call_timeout_s=0.5)  # real time: roomy for a loaded CI machine

    data = await run_for(client, endpoint)

    assert len(data["rows"]) == 5
    assert server.count(endpoint) == CLEAN_COUNTS[endpoint] + 1  # type: ignore[arg-type]


async def test_exhausted_retries_raise_last_error_with_server_text(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    text = "upstream cluster unavailable (code 7)"
    server.add_faults("execute", *[Fault.http(503, text)] * 6)
    client = make_client(max_retries=4, backoff_base_s=1.0, backoff_cap_s=30.0)

    with pytest.raises(DuneApiError) as caught:
        await client.execute_query(QUERY)

    assert server.count("execute") == 5  # 1 try + 4 retries
    assert clock.slept == [1.0, 2.0, 4.0, 8.0]
    assert caught.value.status == 503
    assert caught.value.retryable is True
    assert text in caught.value.message
    assert server.pending_faults("execute") == 1


async def test_backoff_is_capped_and_jittered(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    server.add_faults("latest", *[Fault.http(500)] * 4)
    capped = make_client(max_retries=4, backoff_base_s=1.0, backoff_cap_s=3.0)
    await capped.latest_results(QUERY)
    assert clock.slept == [1.0, 2.0, 3.0, 3.0]

    clock.slept.clear()
    server.add_faults("latest", *[Fault.http(500)] * 4)
    jittered = make_client(max_retries=4, backoff_base_s=1.0, rng=random.Random(3))
    await jittered.latest_results(QUERY)
    ceilings = [1.0, 2.0, 4.0, 8.0]
    assert all(0.0 <= s <= c for s, c in zip(clock.slept, ceilings, strict=True))
    assert clock.slept != ceilings


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("0", 0.0), ("3600", 60.0)])
async def test_retry_after_seconds_is_honoured_and_capped(
    server: FakeDuneServer,
    make_client: Callable[..., DuneClient],
    clock: FakeClock,
    header: str,
    expected: float,
) -> None:
    server.add_faults("status", Fault.http(429, "slow down", retry_after=header))
    client = make_client(retry_after_cap_s=60.0, refresh_deadline_s=600.0)
    await client.execute_query(QUERY)
    assert clock.slept == [expected]
    assert server.count("status") == 2


async def test_retry_after_http_date_is_honoured(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    when = format_datetime(clock.now() + timedelta(seconds=20), usegmt=True)
    server.add_faults("latest", Fault.http(429, retry_after=when))
    client = make_client()
    await client.latest_results(QUERY)
    assert clock.slept == [20.0]


async def test_retry_is_logged_for_operators(
    server: FakeDuneServer, make_client: Callable[..., DuneClient]
) -> None:
    server.add_faults("latest", Fault.http(502, "bad gateway today"))
    client = make_client()
    with capture_logs() as logs:
        await client.latest_results(QUERY)
    (retry,) = [e for e in logs if e["event"] == "dune_retry"]
    assert retry["status"] == 502
    assert retry["attempt"] == 1
    assert "bad gateway today" in retry["error"]


async def test_connection_errors_are_retried_then_raised(
    make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again on exit: nothing listens there
    client = make_client(base_url=f"http://127.0.0.1:{port}/api/v1", max_retries=2)

    with pytest.raises(DuneApiError, match="connection failed") as caught:
        await client.latest_results(QUERY)

    assert caught.value.status is None
    assert caught.value.retryable is True
    assert clock.slept == [1.0, 2.0]
    assert_no_secret(caught.value)


# --------------------------------------------------------------------------- no-retry errors


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        (400, None),
        (401, "DUNE_API_KEY"),
        (402, "credits"),
        (403, "forbidden"),
        (404, "query id"),
        (409, None),
    ],
)
@pytest.mark.parametrize("endpoint", ["execute", "status", "latest"])
async def test_client_errors_are_not_retried(
    server: FakeDuneServer,
    make_client: Callable[..., DuneClient],
    clock: FakeClock,
    status: int,
    advice: str | None,
    endpoint: str,
) -> None:
    text = f"server says no ({status})"
    server.add_faults(endpoint, Fault.http(status, text))  # type: ignore[arg-type]
    client = make_client()

    with pytest.raises(DuneApiError) as caught:
        await run_for(client, endpoint)

    assert server.count(endpoint) == 1  # type: ignore[arg-type]
    assert clock.slept == []
    assert caught.value.status == status
    assert caught.value.retryable is False
    assert text in caught.value.message
    if advice is not None:
        assert advice in caught.value.message
    assert isinstance(caught.value, IntelFetchError)


async def test_wrong_key_is_reported_clearly_without_the_key(
    server: FakeDuneServer, make_client: Callable[..., DuneClient]
) -> None:
    wrong = "wrong-key-77c1d0"
    client = make_client(api_key=wrong)

    with pytest.raises(DuneApiError) as caught:
        await client.execute_query(QUERY)

    assert caught.value.status == 401
    assert "invalid API Key" in caught.value.message
    assert "DUNE_API_KEY" in caught.value.message
    assert wrong not in str(caught.value)
    assert server.count() == 1


# --------------------------------------------------------------------------- the key stays secret


@pytest.mark.parametrize(
    "fault",
    [
        Fault.http(401),
        Fault.http(402),
        Fault.http(403),
        Fault.http(500),
        Fault.http(429, retry_after="1"),
        Fault.malformed(),
        Fault.http(400, f"bad key {KEY} in request"),  # a server echoing the key back
    ],
)
async def test_key_never_in_exceptions_reprs_or_logs(
    server: FakeDuneServer,
    make_client: Callable[..., DuneClient],
    capsys: pytest.CaptureFixture[str],
    fault: Fault,
) -> None:
    server.add_faults("latest", *[fault] * 3)
    client = make_client(max_retries=2)

    with capture_logs() as logs, pytest.raises(IntelFetchError) as caught:
        await client.latest_results(QUERY)
    structlog.get_logger("test").warning("after_failure", error=caught.value.message)

    assert_no_secret(caught.value, caught.value.message, client, logs)
    output = capsys.readouterr()
    assert KEY not in output.out
    assert KEY not in output.err
    assert all(r.had_valid_key for r in server.requests)  # the key was really used


def test_api_key_must_be_set(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="DUNE_API_KEY"):
        DuneClient("http://127.0.0.1:1/api/v1", "", clock)


# --------------------------------------------------------------------------- deadlines


async def test_overall_deadline_bounds_polling(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    server.configure_query(QUERY, polls_until_done=10_000)
    client = make_client(refresh_deadline_s=30.0, poll_interval_s=1.0, poll_interval_max_s=2.0)
    start = clock.monotonic()

    with pytest.raises(DuneDeadlineError, match="deadline") as caught:
        await client.execute_query(QUERY)

    assert clock.monotonic() - start <= 30.0
    assert 10 < server.count("status") < 30
    assert server.count("results") == 0
    assert caught.value.retryable is True


async def test_deadline_stops_a_retry_that_would_overrun_it(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    server.add_faults("latest", Fault.http(429, "rate limited", retry_after="50"))
    client = make_client(refresh_deadline_s=30.0)

    with pytest.raises(DuneDeadlineError) as caught:
        await client.latest_results(QUERY)

    assert "rate limited" in caught.value.message
    assert clock.slept == []
    assert server.count("latest") == 1


# --------------------------------------------------------------------------- rate limits


def most_in_any_window(times: list[float], period: float = 60.0) -> int:
    """The largest number of times inside any half-open window of ``period`` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - period + 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_read_rate_limit_holds_over_a_simulated_minute(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    client = make_client(read_rpm=40)
    start = clock.monotonic()

    for _ in range(60):
        await client.latest_results(QUERY)

    times = [r.at for r in server.requests_to("latest")]
    assert len(times) == 60
    # 10 % headroom over a 62 s window: 36, so arrival jitter of up to 2 s cannot put more
    # than the plan's 40 into any 60 s window Dune counts.
    assert most_in_any_window(times, 62.0) == 36
    jittered = [t + (1.0 if n % 2 else -1.0) for n, t in enumerate(sorted(times))]
    assert most_in_any_window(jittered) <= 40
    assert clock.monotonic() - start >= 60.0


async def test_ratelimit_headers_lower_the_pace_and_a_spent_quota_waits(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    client = make_client(read_rpm=200)
    assert client.limits()["read"] == 180
    server.extra_headers = {
        "RateLimit-Limit": "40",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "7",
    }
    await client.latest_results(QUERY)
    assert client.limits()["read"] == 36
    before = clock.monotonic()
    await client.latest_results(QUERY)
    assert clock.monotonic() - before >= 7.0
    server.extra_headers = {"RateLimit-Limit": "1000"}
    await client.latest_results(QUERY)
    assert client.limits()["read"] == 36  # headers only ever lower the pace


class RecordingLimiter(SlidingWindowLimiter):
    """Remembers when each request was let through."""

    def __init__(self, limit: int, clock: FakeClock) -> None:
        super().__init__(limit, clock)
        self.grants: list[float] = []
        self._fake_clock = clock

    async def acquire(self, deadline: float | None = None) -> None:
        await super().acquire(deadline)
        self.grants.append(self._fake_clock.monotonic())


async def test_rate_limits_hold_for_concurrent_executions(
    server: FakeDuneServer, make_client: Callable[..., DuneClient], clock: FakeClock
) -> None:
    # With concurrent workers the shared FakeClock jumps while requests are in flight, so
    # the limits are checked at the moment each request is let through.
    executes, reads = RecordingLimiter(15, clock), RecordingLimiter(40, clock)
    client = make_client(execute_limiter=executes, read_limiter=reads, refresh_deadline_s=3600.0)

    await asyncio.gather(*(client.execute_query(QUERY, {"i": i}) for i in range(40)))

    assert len(executes.grants) == server.count("execute") == 40
    assert len(reads.grants) == server.count("status") + server.count("results") == 80
    assert most_in_any_window(executes.grants) == 15
    assert most_in_any_window(reads.grants) <= 40


# --------------------------------------------------------------------------- lifecycle


async def test_close_is_idempotent_and_leaves_a_shared_session_open(
    server: FakeDuneServer, clock: FakeClock
) -> None:
    async with aiohttp.ClientSession() as shared:
        client = DuneClient(server.base_url, KEY, clock, session=shared)
        await client.latest_results(QUERY)
        await client.close()
        await client.close()
        assert not shared.closed
        with pytest.raises(DuneApiError, match="closed") as caught:
            await client.latest_results(QUERY)
        assert caught.value.retryable is False

    owned = DuneClient(server.base_url, KEY, clock)
    await owned.latest_results(QUERY)
    await owned.close()
    await owned.close()
