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

import random
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog
from pydantic import SecretStr

from clmmd.artifacts.base.clock import Clock
from clmmd.artifacts.base.ratelimit import RateLimitWaitTooLong, SlidingWindowLimiter
from clmmd.artifacts.base.retry import backoff_delay, parse_retry_after
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
    "DuneProtocolError",
    "ParamValue",
]

log = structlog.get_logger(__name__)

ParamValue = str | int | float


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
        # Limiters may be passed in to share one key's budget between several clients.
        self._execute_limiter = execute_limiter or SlidingWindowLimiter(execute_rpm, clock)
        self._read_limiter = read_limiter or SlidingWindowLimiter(read_rpm, clock)

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
        """Run the query, wait for it, and return all rows.

        Returns ``{"rows", "partial", "execution_id", "metadata"}``; ``partial`` is true when
        Dune finished with QUERY_STATE_COMPLETED_PARTIAL. Raises :class:`DuneError`.
        """
        deadline = self._clock.monotonic() + self._refresh_deadline_s
        body = {"query_parameters": dict(parameters or {}), "performance": self._performance}
        started = await self._call(
            "execute", "POST", self._url(f"/query/{query_id}/execute"), deadline, body=body
        )
        execution_id = started.get("execution_id")
        if not isinstance(execution_id, str) or not execution_id:
            raise DuneProtocolError(f"Dune execute of query {query_id}: no execution_id in answer")
        log.info("dune_execution_started", query_id=query_id, execution_id=execution_id)
        state = await self._wait_until_done(execution_id, deadline)
        data = await self._read_all_pages(
            self._url(f"/execution/{execution_id}/results"), {}, deadline
        )
        data["partial"] = data["partial"] or state == STATE_COMPLETED_PARTIAL
        data["execution_id"] = execution_id
        log.info(
            "dune_rows_fetched", query_id=query_id, rows=len(data["rows"]), partial=data["partial"]
        )
        return data

    async def latest_results(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]:
        """Read the latest stored result of the query (no execution, no credits).

        Same return shape and errors as :meth:`execute_query`.
        """
        deadline = self._clock.monotonic() + self._refresh_deadline_s
        params = {f"params.{k}": str(v) for k, v in (parameters or {}).items()}
        data = await self._read_all_pages(self._url(f"/query/{query_id}/results"), params, deadline)
        log.info(
            "dune_rows_fetched", query_id=query_id, rows=len(data["rows"]), partial=data["partial"]
        )
        return data

    # ----------------------------------------------------------------- protocol steps

    async def _wait_until_done(self, execution_id: str, deadline: float) -> str:
        url = self._url(f"/execution/{execution_id}/status")
        interval = self._poll_interval_s
        while True:
            status = await self._call("read", "GET", url, deadline)
            state = status.get("state")
            if state in DONE_STATES:
                return str(state)
            if state not in RUNNING_STATES:
                raise self._scrub_error(
                    execution_error(f"Dune execution {execution_id}", state, status)
                )
            if self._clock.monotonic() + interval >= deadline:
                raise DuneDeadlineError(
                    f"Dune execution {execution_id} still {state} at the "
                    f"{self._refresh_deadline_s:g}s refresh deadline"
                )
            await self._clock.sleep(interval)
            interval = min(interval * self._poll_growth, self._poll_interval_max_s)

    async def _read_all_pages(
        self, first_url: str, params: dict[str, str], deadline: float
    ) -> dict[str, Any]:
        rows: list[Any] = []
        metadata: dict[str, Any] = {}
        partial = False
        execution_id: Any = None
        url = first_url
        page_params: dict[str, str] | None = self._page_params(params, 0)
        seen_urls: set[str] = set()
        first_page = True
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
            if first_page:
                metadata = dict(result.get("metadata") or {})
                execution_id = page.get("execution_id")
                first_page = False
            rows.extend(result["rows"])
            partial = partial or state == STATE_COMPLETED_PARTIAL
            next_uri, next_offset = page.get("next_uri"), page.get("next_offset")
            if isinstance(next_uri, str) and next_uri and self._same_origin(next_uri):
                url, page_params = urljoin(self._base_url + "/", next_uri), None
            elif isinstance(next_offset, int) and not isinstance(next_offset, bool):
                # next_uri missing or pointing elsewhere: page by offset, keep our own params,
                # and never send the key to a host we were not configured for.
                url, page_params = first_url, self._page_params(params, next_offset)
            else:
                break
            page_key = url + repr(sorted((page_params or {}).items()))
            if page_key in seen_urls:
                raise DuneProtocolError(f"Dune results at {urlsplit(url).path}: paging loops")
            seen_urls.add(page_key)
        return {
            "rows": rows,
            "partial": partial,
            "execution_id": execution_id,
            "metadata": metadata,
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
            try:
                await limiter.acquire(deadline)
            except RateLimitWaitTooLong as exc:
                raise DuneDeadlineError(f"{label}: {exc}") from None
            try:
                return await self._send_once(
                    label, method, url, params, body, min(self._call_timeout_s, remaining)
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
