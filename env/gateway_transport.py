"""The HTTP layer of the Gateway client: session, TLS, auth, rate limit, retries, wallet locks.

Policy: reads retry 429/5xx/connection errors with capped exponential backoff and jitter,
honouring ``Retry-After`` (:mod:`scheduler.retry`, shared with the Dune client); writes are
never re-sent (a lost answer to a write is reconciled by the caller). Every request passes a
clock-driven sliding-window limiter (100/minute, Gateway's own limit — above it Gateway answers
429 and then bans for a while with 403), and writes for one wallet are serialised by a
per-wallet lock (Gateway signs with the wallet's next nonce).
"""

from __future__ import annotations

import asyncio
import random
import ssl
from typing import Any, Self

import aiohttp
import orjson
import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.artifacts.base.ratelimit import RateLimitWaitTooLong, SlidingWindowLimiter
from clmmd.artifacts.base.retry import backoff_delay, parse_retry_after
from clmmd.env.gateway_errors import (
    GatewayRateLimited,
    GatewayResponseError,
    GatewayServerError,
    GatewayUnreachable,
    error_for_status,
)
from clmmd.env.gateway_models import Json, WriteResult

log = structlog.get_logger(__name__)

DEFAULT_GATEWAY_URL = "http://localhost:15888"


class GatewayTransport:
    """Sends requests to one Gateway; :class:`env.gateway.GatewayClient` adds the routes.

    ``ssl_context`` enables HTTPS with whatever it carries (CA, client certificate and key).
    ``api_key`` (optional) is sent as a bearer token; it never appears in reprs or logs.
    Deadlines: ``read_timeout_s`` per read attempt, ``write_timeout_s`` per write (Gateway
    waits for the receipt before answering), ``max_queue_s`` for a rate-limiter slot.
    """

    def __init__(
        self,
        clock: Clock,
        base_url: str = DEFAULT_GATEWAY_URL,
        *,
        ssl_context: ssl.SSLContext | None = None,
        api_key: str | None = None,
        read_timeout_s: float = 15.0,
        write_timeout_s: float = 180.0,
        read_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        requests_per_minute: int = 100,
        max_queue_s: float = 90.0,
        rng: random.Random | None = None,
    ) -> None:
        if read_attempts < 1:
            raise ValueError(f"read_attempts must be >= 1, got {read_attempts}")
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._ssl = ssl_context
        self._api_key = api_key
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self._read_attempts = read_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._limiter = SlidingWindowLimiter(requests_per_minute, clock)
        self._max_queue_s = max_queue_s
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._wallet_locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        auth = "set" if self._api_key else "none"
        tls = "on" if self._ssl is not None else "off"
        return f"{type(self).__name__}(base_url={self.base_url!r}, tls={tls}, api_key={auth})"

    async def close(self) -> None:
        """Close the HTTP session (idempotent; a later request opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def wallet_lock(self, wallet_address: str) -> asyncio.Lock:
        """The lock serialising writes from ``wallet_address`` (case-insensitive)."""
        return self._wallet_locks.setdefault(wallet_address.lower(), asyncio.Lock())

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            # ssl=True is aiohttp's default verification; it only matters for https URLs.
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(headers=headers, connector=connector)
        return self._session

    async def _send(
        self, method: str, path: str, params: Json | None, body: Json | None, timeout_s: float
    ) -> Json | list[Any]:
        """One HTTP exchange: returns the parsed JSON or raises a typed :class:`GatewayError`."""
        try:
            # Waiting for a slot is queueing, bounded on its own (a full window is 60 s).
            await self._limiter.acquire(deadline=self._clock.monotonic() + self._max_queue_s)
        except RateLimitWaitTooLong as exc:
            raise GatewayRateLimited(429, "Client Rate Limit", str(exc), exc.wait_s) from None
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self._get_session().request(
                method,
                self.base_url + path,
                params=query or None,
                data=orjson.dumps(body) if body is not None else None,
                headers={"Content-Type": "application/json"} if body is not None else None,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._clock.now()
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise GatewayUnreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        try:
            parsed: Any = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            parsed = None
        if status >= 400:
            info = parsed if isinstance(parsed, dict) else {}
            text = raw[:200].decode(errors="replace")
            raise error_for_status(
                status,
                str(info.get("error") or "HTTP error"),
                str(info.get("message") or text or "no message"),
                retry_after,
            )
        if not isinstance(parsed, (dict, list)):
            raise GatewayResponseError(f"{method} {path}: answer is not a JSON object", status)
        return parsed

    async def _read(self, path: str, params: Json) -> Json | list[Any]:
        """GET with retries for 429, 5xx and lost connections (reads are idempotent)."""
        return await self._send_retried("GET", path, params, None)

    async def _send_retried(
        self,
        method: str,
        path: str,
        params: Json | None,
        body: Json | None,
        *,
        log_retries: bool = True,
    ) -> Json | list[Any]:
        """Send an idempotent request, retrying 429, 5xx and lost connections.

        Reads log each retry as ``gateway_read_retry``; transaction polling passes
        ``log_retries=False`` (its retries have never been logged).
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._send(method, path, params, body, self.read_timeout_s)
            except (GatewayRateLimited, GatewayServerError, GatewayUnreachable) as exc:
                if attempt >= self._read_attempts:
                    raise
                wait = self._backoff(attempt, getattr(exc, "retry_after_s", None))
                if log_retries:
                    log.warning(
                        "gateway_read_retry",
                        path=path,
                        attempt=attempt,
                        wait_s=wait,
                        error=str(exc),
                    )
                await self._clock.sleep(wait)

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        # One cap for both: a wait Gateway asks for in Retry-After is capped like our own.
        return backoff_delay(
            attempt - 1,
            retry_after_s,
            base_s=self._backoff_base_s,
            cap_s=self._backoff_cap_s,
            retry_after_cap_s=self._backoff_cap_s,
            rng=self._rng,
        )

    async def _write(self, path: str, body: Json, wallet_address: str) -> WriteResult:
        """POST once, under the wallet's lock. Never retried: a lost answer is not a failure."""
        async with self.wallet_lock(wallet_address):
            answer = await self._send("POST", path, None, body, self.write_timeout_s)
        return WriteResult.parse(answer, f"POST {path}")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def build_ssl_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """TLS for Gateway: verify against ``ca_file`` (else the system store) and present a client
    certificate when ``cert_file`` is given (Gateway's HTTPS mode requires one)."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    elif key_file:
        raise ValueError("a client key without a client certificate")
    return context
