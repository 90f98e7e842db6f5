"""Client for Hummingbot Gateway's CLMM routes (Uniswap V3 through the ``uniswap`` connector).

Two route families exist in the wild (see ``docs/gateway.md``):

* **unified** ``/trading/clmm/{pool-info,quote-position,positions-owned,position-info}`` (GET)
  and ``/trading/clmm/{open,close,remove,collect-fees}`` (POST), addressed with ``connector``
  and ``chainNetwork`` (``"ethereum-mainnet"``);
* **legacy** ``/connectors/uniswap/clmm/{pool-info,...,open-position,close-position,
  remove-liquidity,collect-fees}``, addressed with ``network``.

The family is detected once, on the first request, by asking the unified pool-info route and
falling back when Gateway answers Fastify's "Route ... not found" 404.

Policy: reads retry 429/5xx/connection errors with capped exponential backoff and jitter,
honouring ``Retry-After``; writes are never re-sent (a lost answer to a write is reconciled by
the caller). Every request passes a clock-driven sliding-window limiter (100/minute, Gateway's
own limit — above it Gateway answers 429 and then bans for a while with 403), and writes for one
wallet are serialised by a per-wallet lock (Gateway signs with the wallet's next nonce).
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import aiohttp
import orjson
import structlog

from env.gateway_errors import (
    GatewayError,
    GatewayRateLimited,
    GatewayResponseError,
    GatewayRouteMissing,
    GatewayServerError,
    GatewayUnreachable,
    TransactionNotConfirmed,
    TransactionReverted,
    error_for_status,
)
from scheduler.ratelimit import RateLimitWaitTooLong, SlidingWindowLimiter
from service.clock import Clock

log = structlog.get_logger(__name__)

DEFAULT_GATEWAY_URL = "http://localhost:15888"
RouteFamily = Literal["unified", "legacy"]
Json = dict[str, Any]

#: Logical operation -> (HTTP method, unified path, legacy path).
ROUTES: dict[str, tuple[str, str, str]] = {
    "pool_info": ("GET", "/trading/clmm/pool-info", "/connectors/{connector}/clmm/pool-info"),
    "quote_position": (
        "GET",
        "/trading/clmm/quote-position",
        "/connectors/{connector}/clmm/quote-position",
    ),
    "positions_owned": (
        "GET",
        "/trading/clmm/positions-owned",
        "/connectors/{connector}/clmm/positions-owned",
    ),
    "position_info": (
        "GET",
        "/trading/clmm/position-info",
        "/connectors/{connector}/clmm/position-info",
    ),
    "open": ("POST", "/trading/clmm/open", "/connectors/{connector}/clmm/open-position"),
    "close": ("POST", "/trading/clmm/close", "/connectors/{connector}/clmm/close-position"),
    "remove": ("POST", "/trading/clmm/remove", "/connectors/{connector}/clmm/remove-liquidity"),
    "collect_fees": (
        "POST",
        "/trading/clmm/collect-fees",
        "/connectors/{connector}/clmm/collect-fees",
    ),
}

#: Gateway's TransactionStatus enum (src/schemas/chain-schema.ts).
TX_CONFIRMED, TX_PENDING, TX_FAILED = 1, 0, -1


def parse_amount(value: Any, field: str) -> float:
    """A number Gateway sent as a JSON number or a decimal string (``"1.5"``), as float."""
    if isinstance(value, bool) or value is None:
        raise GatewayResponseError(f"field {field!r}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (str, Decimal)):
        try:
            parsed = Decimal(str(value).strip())
        except InvalidOperation:
            raise GatewayResponseError(f"field {field!r}: not a number: {value!r}") from None
        if not parsed.is_finite():
            raise GatewayResponseError(f"field {field!r}: not finite: {value!r}")
        return float(parsed)
    raise GatewayResponseError(f"field {field!r}: expected a number, got {type(value).__name__}")


def _amount(body: Mapping[str, Any], field: str, default: float | None = None) -> float:
    if field not in body or body[field] is None:
        if default is not None:
            return default
        raise GatewayResponseError(f"missing field {field!r}")
    return parse_amount(body[field], field)


@dataclass(frozen=True)
class Venue:
    """Where to act: Gateway's chain and network names plus the CLMM connector."""

    chain: str = "ethereum"
    network: str = "mainnet"
    connector: str = "uniswap"

    @property
    def chain_network(self) -> str:
        return f"{self.chain}-{self.network}"


@dataclass(frozen=True)
class PoolInfo:
    """pool-info. ``price`` is quote tokens per base token in human units."""

    address: str
    base_token_address: str
    quote_token_address: str
    fee_pct: float
    price: float
    active_tick: int | None

    @classmethod
    def parse(cls, body: Json) -> PoolInfo:
        try:
            tick = body.get("activeBinId", body.get("tick"))
            return cls(
                address=str(body["address"]),
                base_token_address=str(body["baseTokenAddress"]),
                quote_token_address=str(body["quoteTokenAddress"]),
                fee_pct=_amount(body, "feePct"),
                price=_amount(body, "price"),
                active_tick=int(parse_amount(tick, "activeBinId")) if tick is not None else None,
            )
        except KeyError as exc:
            raise GatewayResponseError(f"pool-info: missing field {exc}") from None

    @property
    def base_is_token0(self) -> bool:
        """Uniswap orders a pool's tokens by address: token0 has the lower one."""
        return int(self.base_token_address, 16) < int(self.quote_token_address, 16)


@dataclass(frozen=True)
class PositionQuote:
    base_limited: bool
    base_token_amount: float
    quote_token_amount: float
    base_token_amount_max: float
    quote_token_amount_max: float

    @classmethod
    def parse(cls, body: Json) -> PositionQuote:
        base = _amount(body, "baseTokenAmount")
        quote = _amount(body, "quoteTokenAmount")
        return cls(
            base_limited=bool(body.get("baseLimited", False)),
            base_token_amount=base,
            quote_token_amount=quote,
            base_token_amount_max=_amount(body, "baseTokenAmountMax", base),
            quote_token_amount_max=_amount(body, "quoteTokenAmountMax", quote),
        )


@dataclass(frozen=True)
class PositionInfo:
    """One position (positions-owned entry or position-info). Ticks are Uniswap's bin ids."""

    address: str
    pool_address: str
    base_token_amount: float
    quote_token_amount: float
    base_fee_amount: float
    quote_fee_amount: float
    lower_tick: int | None
    upper_tick: int | None
    lower_price: float
    upper_price: float

    @classmethod
    def parse(cls, body: Json) -> PositionInfo:
        try:
            low, high = body.get("lowerBinId"), body.get("upperBinId")
            return cls(
                address=str(body["address"]),
                pool_address=str(body["poolAddress"]),
                base_token_amount=_amount(body, "baseTokenAmount", 0.0),
                quote_token_amount=_amount(body, "quoteTokenAmount", 0.0),
                base_fee_amount=_amount(body, "baseFeeAmount", 0.0),
                quote_fee_amount=_amount(body, "quoteFeeAmount", 0.0),
                lower_tick=int(parse_amount(low, "lowerBinId")) if low is not None else None,
                upper_tick=int(parse_amount(high, "upperBinId")) if high is not None else None,
                lower_price=_amount(body, "lowerPrice", 0.0),
                upper_price=_amount(body, "upperPrice", 0.0),
            )
        except KeyError as exc:
            raise GatewayResponseError(f"position: missing field {exc}") from None


@dataclass(frozen=True)
class WriteResult:
    """A write's answer: ``status`` 1 confirmed, 0 pending, -1 failed; ``data`` when confirmed.

    Older Gateways answered confirmed writes flat (no ``status``/``data``); those are read as
    confirmed with the body itself as ``data``.
    """

    signature: str
    status: int
    data: Json

    @classmethod
    def parse(cls, body: Json) -> WriteResult:
        signature = body.get("signature") or body.get("txHash")
        if not isinstance(signature, str) or not signature:
            raise GatewayResponseError("write answer without a transaction signature")
        if "status" not in body:
            return cls(signature, TX_CONFIRMED, dict(body))
        status = int(parse_amount(body["status"], "status"))
        data = body.get("data")
        return cls(signature, status, dict(data) if isinstance(data, dict) else {})

    @property
    def fee_native(self) -> float:
        """Gas paid in the chain's native token (0 when Gateway did not say)."""
        return _amount(self.data, "fee", 0.0)

    def amount(self, field: str) -> float:
        return _amount(self.data, field, 0.0)


@dataclass(frozen=True)
class PollResult:
    signature: str
    tx_status: int
    fee_native: float | None
    error: str | None


class GatewayClient:
    """Async Gateway client. Construct it only in real mode; close it with :meth:`close`.

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
        self._family: RouteFamily | None = None
        self._family_lock = asyncio.Lock()
        self._wallet_locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        auth = "set" if self._api_key else "none"
        tls = "on" if self._ssl is not None else "off"
        return f"GatewayClient(base_url={self.base_url!r}, tls={tls}, api_key={auth})"

    @property
    def route_family(self) -> RouteFamily | None:
        """``"unified"`` or ``"legacy"`` once detected, else ``None``."""
        return self._family

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def wallet_lock(self, wallet_address: str) -> asyncio.Lock:
        """The lock serialising writes from ``wallet_address`` (case-insensitive)."""
        return self._wallet_locks.setdefault(wallet_address.lower(), asyncio.Lock())

    # --- transport ---

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
                retry_after = _retry_after_s(response.headers.get("Retry-After"), self._clock)
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
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._send("GET", path, params, None, self.read_timeout_s)
            except (GatewayRateLimited, GatewayServerError, GatewayUnreachable) as exc:
                if attempt >= self._read_attempts:
                    raise
                wait = self._backoff(attempt, getattr(exc, "retry_after_s", None))
                log.warning(
                    "gateway_read_retry", path=path, attempt=attempt, wait_s=wait, error=str(exc)
                )
                await self._clock.sleep(wait)

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self._backoff_cap_s)
        ceiling = min(self._backoff_cap_s, self._backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(0.0, ceiling)

    async def _write(self, path: str, body: Json, wallet_address: str) -> WriteResult:
        """POST once, under the wallet's lock. Never retried: a lost answer is not a failure."""
        async with self.wallet_lock(wallet_address):
            answer = await self._send("POST", path, None, body, self.write_timeout_s)
        if not isinstance(answer, dict):
            raise GatewayResponseError(f"POST {path}: expected an object")
        return WriteResult.parse(answer)

    # --- route families ---

    def _path(self, op: str, venue: Venue, family: RouteFamily) -> str:
        _method, unified, legacy = ROUTES[op]
        return unified if family == "unified" else legacy.format(connector=venue.connector)

    def _params(self, venue: Venue, family: RouteFamily, **fields: Any) -> Json:
        base: Json = (
            {"connector": venue.connector, "chainNetwork": venue.chain_network}
            if family == "unified"
            else {"network": venue.network}
        )
        base.update({k: v for k, v in fields.items() if v is not None})
        return base

    async def _family_for(self, venue: Venue, pool_address: str) -> RouteFamily:
        if self._family is None:
            await self.pool_info(venue, pool_address)
        assert self._family is not None
        return self._family

    # --- reads ---

    async def health(self) -> float:
        """``GET /`` once (no retries); the round trip in milliseconds. Raises when not ok."""
        start = self._clock.monotonic()
        body = await self._send("GET", "/", None, None, self.read_timeout_s)
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise GatewayResponseError(f"health answer is not status ok: {body!r}")
        return (self._clock.monotonic() - start) * 1000.0

    async def pool_info(self, venue: Venue, pool_address: str) -> PoolInfo:
        """pool-info; the first call also decides (and logs) the route family."""
        async with self._family_lock:
            if self._family is None:
                try:
                    body = await self._read(
                        ROUTES["pool_info"][1],
                        self._params(venue, "unified", poolAddress=pool_address),
                    )
                    self._family = "unified"
                except GatewayRouteMissing:
                    body = await self._read(
                        self._path("pool_info", venue, "legacy"),
                        self._params(venue, "legacy", poolAddress=pool_address),
                    )
                    self._family = "legacy"
                except GatewayError as exc:
                    if exc.status is None or exc.status >= 500 or exc.status == 429:
                        raise  # says nothing about which routes exist
                    self._family = "unified"
                    raise
                finally:
                    if self._family is not None:
                        log.info("gateway_routes", family=self._family, base_url=self.base_url)
                return PoolInfo.parse(_object(body, "pool-info"))
        family = self._family
        body = await self._read(
            self._path("pool_info", venue, family),
            self._params(venue, family, poolAddress=pool_address),
        )
        return PoolInfo.parse(_object(body, "pool-info"))

    async def quote_position(
        self,
        venue: Venue,
        pool_address: str,
        lower_price: float,
        upper_price: float,
        base_token_amount: float | None,
        quote_token_amount: float | None,
        slippage_pct: float | None = None,
    ) -> PositionQuote:
        family = await self._family_for(venue, pool_address)
        params = self._params(
            venue,
            family,
            poolAddress=pool_address,
            lowerPrice=lower_price,
            upperPrice=upper_price,
            baseTokenAmount=base_token_amount,
            quoteTokenAmount=quote_token_amount,
            slippagePct=slippage_pct,
        )
        body = await self._read(self._path("quote_position", venue, family), params)
        return PositionQuote.parse(_object(body, "quote-position"))

    async def positions_owned(
        self, venue: Venue, wallet_address: str, pool_address: str
    ) -> list[PositionInfo]:
        """The wallet's positions in ``pool_address`` (filtered here: unified lists all pools)."""
        family = await self._family_for(venue, pool_address)
        params = self._params(venue, family, walletAddress=wallet_address)
        if family == "legacy":
            params["poolAddress"] = pool_address
        body = await self._read(self._path("positions_owned", venue, family), params)
        if not isinstance(body, list):
            raise GatewayResponseError("positions-owned: expected a list")
        positions = [PositionInfo.parse(_object(item, "position")) for item in body]
        return [p for p in positions if p.pool_address.lower() == pool_address.lower()]

    async def position_info(
        self, venue: Venue, wallet_address: str, position_address: str, pool_address: str
    ) -> PositionInfo:
        family = await self._family_for(venue, pool_address)
        params = self._params(
            venue, family, walletAddress=wallet_address, positionAddress=position_address
        )
        body = await self._read(self._path("position_info", venue, family), params)
        return PositionInfo.parse(_object(body, "position-info"))

    async def poll(self, venue: Venue, signature: str) -> PollResult:
        """``POST /chains/{chain}/poll``: a read in all but method, so it is retried."""
        path = f"/chains/{venue.chain}/poll"
        body = {"network": venue.network, "signature": signature}
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = _object(
                    await self._send("POST", path, None, body, self.read_timeout_s), "poll"
                )
                break
            except (GatewayRateLimited, GatewayServerError, GatewayUnreachable) as exc:
                if attempt >= self._read_attempts:
                    raise
                await self._clock.sleep(self._backoff(attempt, getattr(exc, "retry_after_s", None)))
        fee = answer.get("fee")
        error = answer.get("error")
        return PollResult(
            signature=signature,
            tx_status=int(parse_amount(answer.get("txStatus"), "txStatus")),
            fee_native=parse_amount(fee, "fee") if fee is not None else None,
            error=str(error) if error else None,
        )

    async def wait_confirmed(
        self, venue: Venue, signature: str, *, interval_s: float = 5.0, timeout_s: float = 600.0
    ) -> PollResult:
        """Poll until mined. Raises :class:`TransactionReverted` (status -1) with the reason."""
        start = self._clock.monotonic()
        while True:
            result = await self.poll(venue, signature)
            if result.tx_status == TX_CONFIRMED:
                return result
            if result.tx_status == TX_FAILED:
                raise TransactionReverted(signature, result.error or "no reason given")
            waited = self._clock.monotonic() - start
            if waited >= timeout_s:
                raise TransactionNotConfirmed(signature, waited)
            await self._clock.sleep(interval_s)

    async def token(self, venue: Venue, symbol: str) -> Json:
        """``GET /tokens/{symbol}?chain&network`` -> ``{"symbol","address","decimals",...}``."""
        body = _object(
            await self._read(f"/tokens/{symbol}", {"chain": venue.chain, "network": venue.network}),
            "token",
        )
        token = body.get("token", body)
        if not isinstance(token, dict) or "address" not in token:
            raise GatewayResponseError(f"token {symbol}: no address in the answer")
        return dict(token)

    # --- writes (never retried) ---

    async def open_position(
        self,
        venue: Venue,
        wallet_address: str,
        pool_address: str,
        lower_price: float,
        upper_price: float,
        base_token_amount: float | None,
        quote_token_amount: float | None,
        slippage_pct: float | None = None,
    ) -> WriteResult:
        family = await self._family_for(venue, pool_address)
        body = self._params(
            venue,
            family,
            walletAddress=wallet_address,
            poolAddress=pool_address,
            lowerPrice=lower_price,
            upperPrice=upper_price,
            baseTokenAmount=base_token_amount,
            quoteTokenAmount=quote_token_amount,
            slippagePct=slippage_pct,
        )
        return await self._write(self._path("open", venue, family), body, wallet_address)

    async def close_position(
        self, venue: Venue, wallet_address: str, position_address: str, pool_address: str
    ) -> WriteResult:
        family = await self._family_for(venue, pool_address)
        body = self._params(
            venue, family, walletAddress=wallet_address, positionAddress=position_address
        )
        return await self._write(self._path("close", venue, family), body, wallet_address)

    async def remove_liquidity(
        self,
        venue: Venue,
        wallet_address: str,
        position_address: str,
        pool_address: str,
        percentage: float = 100.0,
    ) -> WriteResult:
        family = await self._family_for(venue, pool_address)
        body = self._params(
            venue,
            family,
            walletAddress=wallet_address,
            positionAddress=position_address,
            percentageToRemove=percentage,
        )
        return await self._write(self._path("remove", venue, family), body, wallet_address)

    async def collect_fees(
        self, venue: Venue, wallet_address: str, position_address: str, pool_address: str
    ) -> WriteResult:
        family = await self._family_for(venue, pool_address)
        body = self._params(
            venue, family, walletAddress=wallet_address, positionAddress=position_address
        )
        return await self._write(self._path("collect_fees", venue, family), body, wallet_address)


def _object(value: Any, what: str) -> Json:
    if not isinstance(value, dict):
        raise GatewayResponseError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _retry_after_s(header: str | None, clock: Clock) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), ``None`` if absent/garbled."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(header) - clock.now()).total_seconds())
    except (TypeError, ValueError):
        return None


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


def client_from_settings(settings_like: Any, clock: Clock) -> GatewayClient:
    """A client from configuration-like attributes (missing optional ones mean "not set").

    Read: ``gateway_url``; optional ``gateway_ca_file``, ``gateway_client_cert_file``,
    ``gateway_client_key_file``, ``gateway_api_key`` (str or pydantic SecretStr),
    ``gateway_read_timeout_s``, ``gateway_write_timeout_s``.
    """
    url = str(getattr(settings_like, "gateway_url", None) or DEFAULT_GATEWAY_URL)
    ca = getattr(settings_like, "gateway_ca_file", None)
    cert = getattr(settings_like, "gateway_client_cert_file", None)
    key = getattr(settings_like, "gateway_client_key_file", None)
    context = None
    if url.startswith("https://") or ca or cert:
        context = build_ssl_context(
            str(ca) if ca else None, str(cert) if cert else None, str(key) if key else None
        )
    api_key = getattr(settings_like, "gateway_api_key", None)
    if api_key is not None and hasattr(api_key, "get_secret_value"):
        api_key = api_key.get_secret_value()
    return GatewayClient(
        clock,
        url,
        ssl_context=context,
        api_key=str(api_key) if api_key else None,
        read_timeout_s=float(getattr(settings_like, "gateway_read_timeout_s", 15.0)),
        write_timeout_s=float(getattr(settings_like, "gateway_write_timeout_s", 180.0)),
    )
