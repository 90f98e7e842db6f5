"""Client for the Dune Analytics API v1: execute a query and read its rows, or read latest rows.

Every remote call is bounded twice: by a per-call timeout and by one overall deadline per
refresh (execute + polling + all result pages). Transient failures (429, 5xx, connection
errors, timeouts, garbled 200 bodies) are retried with exponential backoff and full jitter,
honouring ``Retry-After``; client errors (400/401/402/403/404/409) are raised at once. Requests
are paced by two clock-driven limiters (execute vs reads) so the plan's per-minute limits are
never exceeded. The API key never appears in a repr, a log line or an exception message.
See ``docs/dune-client.md`` for the policy and the error table. The errors live in
:mod:`scheduler.dune_errors` (re-exported here), answer parsing in :mod:`scheduler.dune_responses`
and the backoff policy, shared with the Gateway client, in :mod:`scheduler.retry`.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog
from pydantic import SecretStr

from clmmd.artifacts.base.clock import Clock, parse_utc
from clmmd.artifacts.base.ratelimit import RateLimitWaitTooLong, SlidingWindowLimiter
from clmmd.artifacts.base.retry import backoff_delay, parse_retry_after
from clmmd.scheduler.credits import execution_credits, export_credits
from clmmd.scheduler.dune_errors import (
    DuneApiError,
    DuneDeadlineError,
    DuneError,
    DuneExecutionError,
    DuneProtocolError,
)
from clmmd.scheduler.dune_responses import (
    DONE_STATES,
    RUNNING_STATES,
    STATE_COMPLETED_PARTIAL,
    STATUS_ADVICE,
    error_text,
    execution_error,
    json_object,
)

# The error classes lived here first: callers and tests import them from this module.
__all__ = [
    "DuneApiError",
    "DuneClient",
    "DuneDeadlineError",
    "DuneError",
    "DuneExecutionError",
    "DunePage",
    "DuneProtocolError",
    "ParamValue",
]

log = structlog.get_logger(__name__)

ParamValue = str | int | float


class CreditSink(Protocol):
    """Where the client reports what each call cost (``scheduler.credits.CreditLedger``)."""

    async def charge(
        self, credits: float, *, kind: Literal["execution", "read"], estimated: bool, label: str
    ) -> None: ...


@dataclass
class DunePage:
    """One page of an execution's rows, as :meth:`DuneClient.iter_sql_pages` yields them.

    ``execution_ended_at`` is when Dune finished the execution (UTC), ``partial`` whether Dune
    truncated the result; ``index`` counts pages from 0.
    """

    rows: list[dict[str, Any]]
    execution_id: str
    execution_ended_at: datetime | None
    partial: bool
    index: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Execution:
    execution_id: str
    state: str
    ended_at: datetime | None
    credits: float


class _RetryableFailure(Exception):
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(self, error: DuneApiError, retry_after_s: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after_s = retry_after_s


class DuneClient:
    """Async Dune API client. One per process; share it between workers.

    ``clock`` drives backoff sleeps, poll sleeps, rate limiting and the overall deadline.
    If ``session`` is given it is used and left open by :meth:`close`; otherwise the client
    creates and owns one. ``execute_limiter``/``read_limiter`` replace the limiters built from
    ``execute_rpm``/``read_rpm`` (to share one key's budget between clients).
    """

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str,
        clock: Clock,
        *,
        session: aiohttp.ClientSession | None = None,
        call_timeout_s: float = 10.0,
        refresh_deadline_s: float = 300.0,
        poll_interval_s: float = 1.0,
        poll_interval_max_s: float = 5.0,
        poll_growth: float = 1.5,
        max_retries: int = 4,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 30.0,
        retry_after_cap_s: float = 60.0,
        rng: random.Random | None = None,
        execute_rpm: int = 15,
        read_rpm: int = 40,
        page_size: int = 1000,
        performance: str = "medium",
        execute_limiter: SlidingWindowLimiter | None = None,
        read_limiter: SlidingWindowLimiter | None = None,
        rate_headroom: float = 0.1,
        rate_window_margin_s: float = 2.0,
        credit_sink: CreditSink | None = None,
        credits_per_mb: float = 20.0,
    ) -> None:
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not self._api_key.get_secret_value():
            raise ValueError("DUNE_API_KEY is not set: the Dune source needs an API key")
        self._base_url = base_url.rstrip("/")
        self._origin = urlsplit(self._base_url)[:2]
        self._clock = clock
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._call_timeout_s = call_timeout_s
        self._refresh_deadline_s = refresh_deadline_s
        self._poll_interval_s = poll_interval_s
        self._poll_interval_max_s = poll_interval_max_s
        self._poll_growth = poll_growth
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._retry_after_cap_s = retry_after_cap_s
        self._rng = rng or random.Random()
        self._page_size = page_size
        self._performance = performance
        self._credit_sink = credit_sink
        self._credits_per_mb = credits_per_mb
        self._headroom = rate_headroom
        self._period = 60.0 + rate_window_margin_s
        # Limiters may be passed in to share one key's budget between several clients.
        self._execute_limiter = execute_limiter or SlidingWindowLimiter(
            with_margin(execute_rpm, rate_headroom), clock, period=self._period
        )
        self._read_limiter = read_limiter or SlidingWindowLimiter(
            with_margin(read_rpm, rate_headroom), clock, period=self._period
        )
        self._blocked_until: dict[str, float] = {}

    def __repr__(self) -> str:
        return (
            f"DuneClient(base_url={self._base_url!r}, "
            f"execute_rpm={self._execute_limiter.limit}, read_rpm={self._read_limiter.limit})"
        )

    async def close(self) -> None:
        """Close the owned HTTP session (idempotent; a shared session is left open)."""
        self._closed = True
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    # ----------------------------------------------------------------- public calls

    async def execute_query(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]:
        """Run a saved query, wait for it, and return all rows.

        Returns ``{"rows", "partial", "execution_id", "metadata", "execution_ended_at",
        "credits"}``; ``partial`` is true when Dune finished with
        QUERY_STATE_COMPLETED_PARTIAL. Raises :class:`DuneError`.
        """
        body = {"query_parameters": dict(parameters or {}), "performance": self._performance}
        return await self._run(f"/query/{query_id}/execute", body, f"query {query_id}")

    async def execute_sql(
        self, sql: str, *, label: str = "sql", deadline_s: float | None = None
    ) -> dict[str, Any]:
        """Run raw DuneSQL through ``POST /sql/execute``, wait, and return all rows.

        ``sql`` must be complete (bind parameters first: ``scheduler.shipped_sql``); the
        endpoint takes none. Same return shape and errors as :meth:`execute_query`;
        ``deadline_s`` replaces the refresh deadline for this call.
        """
        body = {"sql": sql, "performance": self._performance}
        return await self._run("/sql/execute", body, label, deadline_s)

    async def iter_sql_pages(
        self, sql: str, *, label: str = "sql", deadline_s: float | None = None
    ) -> AsyncIterator[DunePage]:
        """Run raw DuneSQL and yield its result page by page (``page_size`` rows each).

        For results too large to hold at once (months of swaps): nothing is accumulated. The
        deadline (``deadline_s``, default the refresh deadline) covers the execution and every
        page. Raises :class:`DuneError`.
        """
        deadline = self._clock.monotonic() + (deadline_s or self._refresh_deadline_s)
        body = {"sql": sql, "performance": self._performance}
        execution = await self._start_and_wait("/sql/execute", body, label, deadline)
        url = self._url(f"/execution/{execution.execution_id}/results")
        index = 0
        async for page, result, partial in self._pages(url, {}, deadline):
            await self._charge_read(result, label)
            yield DunePage(
                rows=list(result["rows"]),
                execution_id=execution.execution_id,
                execution_ended_at=execution.ended_at or _time(page.get("execution_ended_at")),
                partial=partial or execution.state == STATE_COMPLETED_PARTIAL,
                index=index,
                metadata=dict(result.get("metadata") or {}),
            )
            index += 1

    async def latest_results(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]:
        """Read the latest stored result of a saved query (no execution).

        Same return shape and errors as :meth:`execute_query`; ``execution_ended_at`` is when
        that stored result was computed, which may be long ago. Reading it still costs
        credits by its size.
        """
        deadline = self._clock.monotonic() + self._refresh_deadline_s
        params = {f"params.{k}": str(v) for k, v in (parameters or {}).items()}
        label = f"latest results of query {query_id}"
        data = await self._read_all_pages(
            self._url(f"/query/{query_id}/results"), params, deadline, label
        )
        log.info(
            "dune_rows_fetched", query_id=query_id, rows=len(data["rows"]), partial=data["partial"]
        )
        return data

    def limits(self) -> dict[str, float]:
        """The effective per-window limits (after margin and ``RateLimit-*`` answers)."""
        return {
            "execute": self._execute_limiter.limit,
            "read": self._read_limiter.limit,
            "window_s": self._period,
        }

    async def _run(
        self, path: str, body: dict[str, Any], label: str, deadline_s: float | None = None
    ) -> dict[str, Any]:
        deadline = self._clock.monotonic() + (deadline_s or self._refresh_deadline_s)
        execution = await self._start_and_wait(path, body, label, deadline)
        data = await self._read_all_pages(
            self._url(f"/execution/{execution.execution_id}/results"), {}, deadline, label
        )
        data["partial"] = data["partial"] or execution.state == STATE_COMPLETED_PARTIAL
        data["execution_id"] = execution.execution_id
        data["execution_ended_at"] = execution.ended_at or data["execution_ended_at"]
        data["credits"] = round(execution.credits + data["credits"], 6)
        log.info("dune_rows_fetched", what=label, rows=len(data["rows"]), partial=data["partial"])
        return data

    async def _start_and_wait(
        self, path: str, body: dict[str, Any], label: str, deadline: float
    ) -> _Execution:
        started = await self._call("execute", "POST", self._url(path), deadline, body=body)
        execution_id = started.get("execution_id")
        if not isinstance(execution_id, str) or not execution_id:
            raise DuneProtocolError(f"Dune execute of {label}: no execution_id in answer")
        log.info("dune_execution_started", what=label, execution_id=execution_id)
        status: dict[str, Any] = {}
        try:
            await self._wait_until_done(execution_id, deadline, status)
        finally:
            # Charged whatever the outcome: Dune bills failed executions that used compute.
            credits, estimated = execution_credits(
                status.get("execution_cost_credits"), self._performance
            )
            await self._charge(credits, "execution", estimated, label)
        return _Execution(
            execution_id, str(status.get("state")), _time(status.get("execution_ended_at")), credits
        )

    async def _charge(
        self, credits: float, kind: Literal["execution", "read"], estimated: bool, label: str
    ) -> None:
        if self._credit_sink is None or credits <= 0:
            return
        try:
            await self._credit_sink.charge(credits, kind=kind, estimated=estimated, label=label)
        except Exception as exc:  # accounting must never fail a fetch
            log.warning("dune_credit_record_failed", error=f"{type(exc).__name__}: {exc}")

    async def _charge_read(self, result: Mapping[str, Any], label: str) -> float:
        metadata = result.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            return 0.0
        size, rows, total = (
            metadata.get(k) for k in ("result_set_bytes", "row_count", "total_row_count")
        )
        if not isinstance(size, int) or not _count(size):
            return 0.0
        # result_set_bytes is the whole result's size; a page exports its share of it.
        share = 1.0
        if isinstance(rows, int) and isinstance(total, int) and _count(rows) and total > 0:
            share = rows / total
        credits = export_credits(math.ceil(size * min(1.0, share)), self._credits_per_mb)
        await self._charge(credits, "read", True, label)
        return credits

    # ----------------------------------------------------------------- protocol steps

    async def _wait_until_done(
        self, execution_id: str, deadline: float, status: dict[str, Any]
    ) -> None:
        """Poll until the execution is done; ``status`` ends up holding the last answer (also
        when this raises, so a failed execution's reported cost is still recorded)."""
        url = self._url(f"/execution/{execution_id}/status")
        interval = self._poll_interval_s
        while True:
            status.clear()
            status.update(await self._call("read", "GET", url, deadline))
            state = status.get("state")
            if state in DONE_STATES:
                return
            if state not in RUNNING_STATES:
                error = execution_error(f"Dune execution {execution_id}", state, status)
                raise self._scrub_error(error)
            if self._clock.monotonic() + interval >= deadline:
                raise DuneDeadlineError(
                    f"Dune execution {execution_id} still {state} at the "
                    f"{self._refresh_deadline_s:g}s refresh deadline"
                )
            await self._clock.sleep(interval)
            interval = min(interval * self._poll_growth, self._poll_interval_max_s)

    async def _pages(
        self, first_url: str, params: dict[str, str], deadline: float
    ) -> AsyncIterator[tuple[dict[str, Any], dict[str, Any], bool]]:
        """Every page of a result: ``(answer, answer["result"], partial)``."""
        url = first_url
        page_params: dict[str, str] | None = self._page_params(params, 0)
        seen_urls: set[str] = set()
        while True:
            page = await self._call("read", "GET", url, deadline, params=page_params)
            result = page.get("result")
            state = page.get("state")
            if state is not None and state not in DONE_STATES and state not in RUNNING_STATES:
                raise self._scrub_error(
                    execution_error(f"Dune results at {urlsplit(url).path}", state, page)
                )
            if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
                raise DuneProtocolError(f"Dune results at {urlsplit(url).path}: no result rows")
            yield page, result, state == STATE_COMPLETED_PARTIAL
            next_uri, next_offset = page.get("next_uri"), page.get("next_offset")
            if isinstance(next_uri, str) and next_uri and self._same_origin(next_uri):
                url, page_params = urljoin(self._base_url + "/", next_uri), None
            elif isinstance(next_offset, int) and not isinstance(next_offset, bool):
                # next_uri missing or pointing elsewhere: page by offset, keep our own params,
                # and never send the key to a host we were not configured for.
                url, page_params = first_url, self._page_params(params, next_offset)
            else:
                return
            page_key = url + repr(sorted((page_params or {}).items()))
            if page_key in seen_urls:
                raise DuneProtocolError(f"Dune results at {urlsplit(url).path}: paging loops")
            seen_urls.add(page_key)

    async def _read_all_pages(
        self, first_url: str, params: dict[str, str], deadline: float, label: str
    ) -> dict[str, Any]:
        rows: list[Any] = []
        metadata: dict[str, Any] = {}
        partial = False
        execution_id: Any = None
        ended_at: datetime | None = None
        credits = 0.0
        async for page, result, page_partial in self._pages(first_url, params, deadline):
            if not rows and not metadata:
                metadata = dict(result.get("metadata") or {})
                execution_id = page.get("execution_id")
                ended_at = _time(page.get("execution_ended_at"))
            rows.extend(result["rows"])
            partial = partial or page_partial
            credits += await self._charge_read(result, label)
        return {
            "rows": rows,
            "partial": partial,
            "execution_id": execution_id,
            "metadata": metadata,
            "execution_ended_at": ended_at,
            "credits": round(credits, 6),
        }

    def _page_params(self, params: dict[str, str], offset: int) -> dict[str, str]:
        # allow_partial_results: without it Dune answers a partial result with an error.
        return {
            **params,
            "limit": str(self._page_size),
            "offset": str(offset),
            "allow_partial_results": "true",
        }

    # ----------------------------------------------------------------- HTTP with retries

    async def _call(
        self,
        kind: Literal["execute", "read"],
        method: str,
        url: str,
        deadline: float,
        *,
        params: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One logical API call: rate-limited, retried, bounded by ``deadline``."""
        label = f"Dune {method} {urlsplit(url).path}"
        limiter = self._execute_limiter if kind == "execute" else self._read_limiter
        attempt = 0
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise DuneDeadlineError(f"{label}: refresh deadline passed")
            await self._wait_if_blocked(kind, label, deadline)
            try:
                await limiter.acquire(deadline)
            except RateLimitWaitTooLong as exc:
                raise DuneDeadlineError(f"{label}: {exc}") from None
            try:
                return await self._send_once(
                    label, method, url, params, body, min(self._call_timeout_s, remaining), kind
                )
            except _RetryableFailure as failure:
                if attempt >= self._max_retries:
                    raise failure.error from None
                delay = self._retry_delay(attempt, failure.retry_after_s)
                if self._clock.monotonic() + delay >= deadline:
                    raise DuneDeadlineError(
                        f"{failure.error.message} (no retry: waiting {delay:.1f}s "
                        "would pass the refresh deadline)"
                    ) from None
                log.warning(
                    "dune_retry",
                    call=label,
                    status=failure.error.status,
                    attempt=attempt + 1,
                    sleep_s=round(delay, 3),
                    error=failure.error.message,
                )
                await self._clock.sleep(delay)
                attempt += 1

    def _retry_delay(self, attempt: int, retry_after_s: float | None) -> float:
        return backoff_delay(
            attempt,
            retry_after_s,
            base_s=self._backoff_base_s,
            cap_s=self._backoff_cap_s,
            retry_after_cap_s=self._retry_after_cap_s,
            rng=self._rng,
        )

    async def _send_once(
        self,
        label: str,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: dict[str, Any] | None,
        timeout_s: float,
        kind: Literal["execute", "read"],
    ) -> dict[str, Any]:
        if self._closed:
            raise DuneApiError(None, f"{label}: the Dune client is closed", retryable=False)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"X-Dune-Api-Key": self._api_key.get_secret_value(), "Accept": "application/json"}
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                status = response.status
                raw = await response.read()
                retry_after = response.headers.get("Retry-After")
                self._learn_limits(kind, response.headers)
        except TimeoutError:
            error = DuneApiError(
                None, f"{label}: no answer within {timeout_s:.1f}s", retryable=True
            )
            raise _RetryableFailure(error) from None
        except aiohttp.ClientError as exc:
            text = self._scrub(f"{type(exc).__name__}: {exc}")
            error = DuneApiError(None, f"{label}: connection failed: {text}", retryable=True)
            raise _RetryableFailure(error) from None
        payload = json_object(raw)
        if 200 <= status < 300:
            if payload is None:
                error = DuneApiError(
                    status, f"{label}: malformed JSON in HTTP {status}", retryable=True
                )
                raise _RetryableFailure(error)
            return payload
        server_text = self._scrub(error_text(payload.get("error") if payload else None, raw))
        advice = STATUS_ADVICE.get(status)
        message = f"{label}: HTTP {status}: {server_text}" + (f" ({advice})" if advice else "")
        if status == 429 or status >= 500:
            error = DuneApiError(status, message, retryable=True)
            raise _RetryableFailure(error, parse_retry_after(retry_after, self._clock.now()))
        raise DuneApiError(status, message, retryable=False)

    # ----------------------------------------------------------------- rate-limit headers

    def _learn_limits(self, kind: Literal["execute", "read"], headers: Mapping[str, str]) -> None:
        """Lower our pace to what Dune's ``RateLimit-*`` headers announce (never raise it)."""
        limiter = self._execute_limiter if kind == "execute" else self._read_limiter
        announced = _header_number(headers, "Limit")
        if announced is not None and announced >= 1:
            lowered = with_margin(int(announced), self._headroom)
            if lowered < limiter.limit:
                log.info(
                    "dune_rate_limit_lowered",
                    kind=kind,
                    announced=int(announced),
                    limit=lowered,
                    previous=limiter.limit,
                )
                limiter.limit = lowered
        remaining = _header_number(headers, "Remaining")
        reset = _header_number(headers, "Reset")
        if remaining is not None and remaining <= 0 and reset is not None and reset > 0:
            until = self._clock.monotonic() + min(reset, self._retry_after_cap_s)
            self._blocked_until[kind] = max(self._blocked_until.get(kind, 0.0), until)

    async def _wait_if_blocked(
        self, kind: Literal["execute", "read"], label: str, deadline: float
    ) -> None:
        wait = self._blocked_until.get(kind, 0.0) - self._clock.monotonic()
        if wait <= 0:
            return
        if self._clock.monotonic() + wait >= deadline:
            raise DuneDeadlineError(
                f"{label}: Dune said the {kind} quota is used up for {wait:.1f}s, past the deadline"
            )
        await self._clock.sleep(wait)

    # ----------------------------------------------------------------- helpers

    def _url(self, path: str) -> str:
        return self._base_url + path

    def _same_origin(self, uri: str) -> bool:
        return urlsplit(urljoin(self._base_url + "/", uri))[:2] == self._origin

    def _scrub_error(self, error: DuneExecutionError) -> DuneExecutionError:
        # Dune's own error text about an execution is quoted in the message: scrub it too.
        return DuneExecutionError(
            self._scrub(error.message), state=error.state, retryable=error.retryable
        )

    def _scrub(self, text: str) -> str:
        # Belt and braces: nothing we raise or log may carry the key, even if echoed back.
        return text.replace(self._api_key.get_secret_value(), "***")


def with_margin(per_minute: int, headroom: float) -> int:
    """A plan's per-minute limit less our safety headroom (at least one request).

    Requests leave us at the limiter's pace but reach Dune with network jitter: one refresh
    was measured at 41 reads inside a 60 s window at a limit of 40. Staying ``headroom`` below
    the limit, over a window a little longer than a minute, keeps Dune's count under it.
    """
    return max(1, math.floor(per_minute * (1 - headroom)))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _time(value: Any) -> datetime | None:
    """A Dune timestamp (RFC 3339, nanoseconds allowed) as an aware datetime, else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return parse_utc(datetime.fromisoformat(text).isoformat())
    except ValueError:
        return None


def _header_number(headers: Mapping[str, str], suffix: str) -> float | None:
    """``RateLimit-<suffix>`` (or ``X-RateLimit-<suffix>``): its first number, else None."""
    for name in (f"RateLimit-{suffix}", f"X-RateLimit-{suffix}"):
        value = headers.get(name)
        if value is None:
            continue
        head = value.split(",")[0].split(";")[0].strip()
        try:
            number = float(head)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
