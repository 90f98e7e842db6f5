"""Client for Hummingbot Gateway's CLMM routes (Uniswap V3 through the ``uniswap`` connector).

Gateway serves one of two route families (see ``docs/gateway.md`` and
:mod:`env.gateway_routes`). The family is detected once, on the first request, by asking the
unified pool-info route and falling back when Gateway answers Fastify's "Route ... not found"
404. The HTTP policy (retries, rate limit, wallet locks) is :mod:`env.gateway_transport`'s;
the parsed answers are in :mod:`env.gateway_models`, the errors in :mod:`env.gateway_errors`.
"""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import Any

import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.env.gateway_errors import (
    GatewayError,
    GatewayResponseError,
    GatewayRouteMissing,
    TransactionNotConfirmed,
    TransactionReverted,
)
from clmmd.env.gateway_models import (
    TX_CONFIRMED,
    TX_FAILED,
    TX_PENDING,
    Allowances,
    Balances,
    ChainStatus,
    Health,
    Json,
    PollResult,
    PoolInfo,
    PositionInfo,
    PositionQuote,
    TokenInfo,
    Venue,
    WriteResult,
    expect_object,
    parse_amount,
)
from clmmd.env.gateway_routes import ROUTES, RouteFamily, route_params, route_path
from clmmd.env.gateway_transport import DEFAULT_GATEWAY_URL, GatewayTransport, build_ssl_context

# Everything below was defined in this module before the split; callers import it from here.
__all__ = [
    "CLMM_SPENDER",
    "DEFAULT_GATEWAY_URL",
    "ROUTES",
    "TX_CONFIRMED",
    "TX_FAILED",
    "TX_PENDING",
    "GatewayClient",
    "Json",
    "PollResult",
    "PoolInfo",
    "PositionInfo",
    "PositionQuote",
    "RouteFamily",
    "Venue",
    "WriteResult",
    "build_ssl_context",
    "client_from_settings",
    "parse_amount",
]

log = structlog.get_logger(__name__)

#: Gateway's name for the Uniswap V3 position manager as an ERC-20 spender (approve/allowances).
CLMM_SPENDER = "uniswap/clmm"


class GatewayClient(GatewayTransport):
    """Async Gateway client. Construct it only in real mode; close it with :meth:`close`.

    Takes :class:`~env.gateway_transport.GatewayTransport`'s arguments (URL, TLS, API key,
    deadlines, retry and rate-limit settings) and adds route-family detection and the CLMM
    operations. Reads are retried; writes are sent once under the wallet's lock.
    """

    # Unknown until the first pool_info detects it (see there).
    _family: RouteFamily | None = None

    @cached_property
    def _family_lock(self) -> asyncio.Lock:
        # Made on first use: __init__ is the transport's, which knows nothing of routes.
        return asyncio.Lock()

    @property
    def route_family(self) -> RouteFamily | None:
        """``"unified"`` or ``"legacy"`` once detected, else ``None``."""
        return self._family

    async def _family_for(self, venue: Venue, pool_address: str) -> RouteFamily:
        if self._family is None:
            await self.pool_info(venue, pool_address)
        assert self._family is not None
        return self._family

    # --- reads ---

    async def health(self) -> float:
        """``GET /`` once (no retries); the round trip in milliseconds. Raises when not ok."""
        start = self._clock.monotonic()
        Health.parse(await self._send("GET", "/", None, None, self.read_timeout_s), "health")
        return (self._clock.monotonic() - start) * 1000.0

    async def pool_info(self, venue: Venue, pool_address: str) -> PoolInfo:
        """pool-info; the first call also decides (and logs) the route family."""
        async with self._family_lock:
            if self._family is None:
                try:
                    body = await self._read(
                        ROUTES["pool_info"][1],
                        route_params(venue, "unified", poolAddress=pool_address),
                    )
                    self._family = "unified"
                except GatewayRouteMissing:
                    body = await self._read(
                        route_path("pool_info", venue, "legacy"),
                        route_params(venue, "legacy", poolAddress=pool_address),
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
                return PoolInfo.parse(body, "pool-info")
        family = self._family
        body = await self._read(
            route_path("pool_info", venue, family),
            route_params(venue, family, poolAddress=pool_address),
        )
        return PoolInfo.parse(body, "pool-info")

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
        """What opening ``[lower_price, upper_price]`` with those amounts would add."""
        family = await self._family_for(venue, pool_address)
        params = route_params(
            venue,
            family,
            poolAddress=pool_address,
            lowerPrice=lower_price,
            upperPrice=upper_price,
            baseTokenAmount=base_token_amount,
            quoteTokenAmount=quote_token_amount,
            slippagePct=slippage_pct,
        )
        body = await self._read(route_path("quote_position", venue, family), params)
        return PositionQuote.parse(body, "quote-position")

    async def positions_owned(
        self, venue: Venue, wallet_address: str, pool_address: str
    ) -> list[PositionInfo]:
        """The wallet's positions in ``pool_address`` (filtered here: unified lists all pools)."""
        family = await self._family_for(venue, pool_address)
        # Neither family filters by pool (v2.13's legacy route has no poolAddress): we do.
        params = route_params(venue, family, walletAddress=wallet_address)
        body = await self._read(route_path("positions_owned", venue, family), params)
        if not isinstance(body, list):
            raise GatewayResponseError("positions-owned: expected a list")
        positions = [PositionInfo.parse(item, "positions-owned") for item in body]
        return [p for p in positions if p.pool_address.lower() == pool_address.lower()]

    async def position_info(
        self, venue: Venue, wallet_address: str, position_address: str, pool_address: str
    ) -> PositionInfo:
        """One position of the wallet, with its amounts, uncollected fees and range."""
        family = await self._family_for(venue, pool_address)
        params = route_params(
            venue, family, walletAddress=wallet_address, positionAddress=position_address
        )
        body = await self._read(route_path("position_info", venue, family), params)
        return PositionInfo.parse(body, "position-info")

    async def poll(self, venue: Venue, signature: str) -> PollResult:
        """``POST /chains/{chain}/poll``: a read in all but method, so it is retried."""
        path = f"/chains/{venue.chain}/poll"
        body = {"network": venue.network, "signature": signature}
        answer = await self._send_retried("POST", path, None, body, log_retries=False)
        return PollResult.parse(answer, "poll")

    async def wait_confirmed(
        self, venue: Venue, signature: str, *, interval_s: float = 5.0, timeout_s: float = 600.0
    ) -> PollResult:
        """Poll until mined. Raises :class:`TransactionReverted` (status -1) with the reason.

        Mined is not succeeded: Gateway v2.13 answers ``txStatus`` 1 for a reverted receipt
        too, so callers check the receipt (:mod:`env.real_receipts`) before trusting it.
        """
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

    async def token(self, venue: Venue, symbol: str) -> TokenInfo:
        """``GET /tokens/{symbol}?chain&network`` -> its symbol, address and decimals."""
        body = expect_object(
            await self._read(f"/tokens/{symbol}", {"chain": venue.chain, "network": venue.network}),
            "token",
        )
        return TokenInfo.parse(body.get("token", body), f"token {symbol}")

    async def chain_status(self, venue: Venue) -> ChainStatus:
        """``GET /chains/{chain}/status``: block height and the node URL Gateway uses."""
        body = await self._read(f"/chains/{venue.chain}/status", {"network": venue.network})
        return ChainStatus.parse(body, "status")

    async def balances(self, venue: Venue, wallet_address: str, tokens: list[str]) -> Balances:
        """``POST /chains/{chain}/balances`` for ``tokens`` (symbols or addresses); a read."""
        body = {"network": venue.network, "address": wallet_address, "tokens": tokens}
        answer = await self._send_retried("POST", f"/chains/{venue.chain}/balances", None, body)
        return Balances.parse(answer, "balances")

    async def allowances(
        self, venue: Venue, wallet_address: str, tokens: list[str], spender: str = CLMM_SPENDER
    ) -> Allowances:
        """``POST /chains/{chain}/allowances``: what ``spender`` may take of each token."""
        body = {
            "network": venue.network,
            "address": wallet_address,
            "spender": spender,
            "tokens": tokens,
        }
        answer = await self._send_retried("POST", f"/chains/{venue.chain}/allowances", None, body)
        return Allowances.parse(answer, "allowances")

    async def approve(
        self,
        venue: Venue,
        wallet_address: str,
        token: str,
        amount: str | None,
        spender: str = CLMM_SPENDER,
    ) -> WriteResult:
        """``POST /chains/{chain}/approve`` (a write): ``amount`` in human units as a decimal
        string, ``None`` for Gateway's default (unlimited)."""
        body: Json = {
            "network": venue.network,
            "address": wallet_address,
            "spender": spender,
            "token": token,
        }
        if amount is not None:
            body["amount"] = amount
        return await self._write(f"/chains/{venue.chain}/approve", body, wallet_address)

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
        """Open a position in the range (sent once; an ambiguous failure is the caller's to
        reconcile, see :mod:`env.real_positions`)."""
        family = await self._family_for(venue, pool_address)
        body = route_params(
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
        return await self._write(route_path("open", venue, family), body, wallet_address)

    async def close_position(
        self, venue: Venue, wallet_address: str, position_address: str, pool_address: str
    ) -> WriteResult:
        """Close the position: remove all liquidity, collect its fees and burn it."""
        return await self._position_write(
            "close", venue, wallet_address, position_address, pool_address
        )

    async def remove_liquidity(
        self,
        venue: Venue,
        wallet_address: str,
        position_address: str,
        pool_address: str,
        percentage: float = 100.0,
    ) -> WriteResult:
        """Remove ``percentage`` of the position's liquidity (fees stay to be collected)."""
        return await self._position_write(
            "remove",
            venue,
            wallet_address,
            position_address,
            pool_address,
            percentageToRemove=percentage,
        )

    async def collect_fees(
        self, venue: Venue, wallet_address: str, position_address: str, pool_address: str
    ) -> WriteResult:
        """Collect the position's accrued fees."""
        return await self._position_write(
            "collect_fees", venue, wallet_address, position_address, pool_address
        )

    async def _position_write(
        self,
        op: str,
        venue: Venue,
        wallet_address: str,
        position_address: str,
        pool_address: str,
        **fields: Any,
    ) -> WriteResult:
        family = await self._family_for(venue, pool_address)
        body = route_params(
            venue, family, walletAddress=wallet_address, positionAddress=position_address, **fields
        )
        return await self._write(route_path(op, venue, family), body, wallet_address)


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
