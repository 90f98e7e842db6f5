"""A fake Hummingbot Gateway (Uniswap CLMM routes) with an in-memory chain, for tests.

It serves either the unified ``/trading/clmm/*`` routes or only the legacy
``/connectors/uniswap/clmm/*`` ones, ``GET /``, ``POST /chains/ethereum/poll`` and
``GET /tokens/{symbol}``; unknown routes answer Fastify's ``Route GET:/x not found`` 404.
Every request is recorded. Scripted behaviours::

    async with FakeGatewayServer(family="legacy") as gw:
        gw.add_pool(FakePool.usdc_weth())
        gw.open_mode = "pending_no_hash"; gw.pending_polls = 2
        gw.fail_close = True            # close answers 500, so remove + collect must run
        gw.fail_quote = True            # quote-position answers 400
        gw.rate_limit_next = 3          # the next three requests answer 429
        ...
        assert gw.count("open") == 1

Prices are quote per base in human units, as Gateway's; the pool's ``base_is_token0`` decides
the orientation. Fees accrue on open in-range positions at each pool-info request.
"""

from __future__ import annotations

import itertools
import math
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

Family = Literal["unified", "legacy"]
OpenMode = Literal["confirmed", "pending_hash", "pending_no_hash", "lost", "reverted"]

UNIFIED_OPS = {
    "pool-info": "pool_info",
    "quote-position": "quote_position",
    "positions-owned": "positions_owned",
    "position-info": "position_info",
    "open": "open",
    "close": "close",
    "remove": "remove",
    "collect-fees": "collect_fees",
}
LEGACY_OPS = {
    "pool-info": "pool_info",
    "quote-position": "quote_position",
    "positions-owned": "positions_owned",
    "position-info": "position_info",
    "open-position": "open",
    "close-position": "close",
    "remove-liquidity": "remove",
    "collect-fees": "collect_fees",
}


@dataclass
class FakePool:
    address: str
    token0: tuple[str, str, int]  # symbol, address, decimals
    token1: tuple[str, str, int]
    fee_pips: int
    tick: int
    base_is_token0: bool
    network: str = "mainnet"

    @classmethod
    def usdc_weth(cls, tick: int = 196_250) -> FakePool:
        """Mainnet USDC/WETH 0.05 % (token0 USDC); Gateway lists it as WETH-USDC (base WETH)."""
        return cls(
            address="0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
            token0=("USDC", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", 6),
            token1=("WETH", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", 18),
            fee_pips=500,
            tick=tick,
            base_is_token0=False,
        )

    def price_at(self, tick: int) -> float:
        token1_per_token0 = 1.0001**tick * 10.0 ** (self.token0[2] - self.token1[2])
        return token1_per_token0 if self.base_is_token0 else 1.0 / token1_per_token0

    def tick_for_price(self, price: float) -> int:
        token1_per_token0 = price if self.base_is_token0 else 1.0 / price
        raw = token1_per_token0 * 10.0 ** (self.token1[2] - self.token0[2])
        spacing = {100: 1, 500: 10, 3000: 60, 10000: 200}[self.fee_pips]
        return round(math.log(raw) / math.log(1.0001) / spacing) * spacing

    @property
    def base(self) -> tuple[str, str, int]:
        return self.token0 if self.base_is_token0 else self.token1

    @property
    def quote(self) -> tuple[str, str, int]:
        return self.token1 if self.base_is_token0 else self.token0


@dataclass
class FakePosition:
    """A Uniswap V3 position with liquidity ``L`` in human units (so amounts follow the price)."""

    address: str
    pool: FakePool
    wallet: str
    lower_tick: int
    upper_tick: int
    liquidity: float = 0.0
    base_fee: float = 0.0
    quote_fee: float = 0.0
    visible_after: int = 0  # positions-owned requests before it shows up (pending open)

    def _sqrt(self, tick: int) -> float:
        return math.sqrt(1.0001**tick * 10.0 ** (self.pool.token0[2] - self.pool.token1[2]))

    def deposit(self, base: float, quote: float) -> None:
        """Set L from the amounts offered at the pool's tick (the scarcer side limits it)."""
        x, y = (base, quote) if self.pool.base_is_token0 else (quote, base)
        sp, sa, sb = (
            self._sqrt(self.pool.tick),
            self._sqrt(self.lower_tick),
            self._sqrt(self.upper_tick),
        )
        if sp <= sa:
            self.liquidity = x * sa * sb / (sb - sa)
        elif sp < sb:
            self.liquidity = min(x * sp * sb / (sb - sp), y / (sp - sa))
        else:
            self.liquidity = y / (sb - sa)

    def amounts(self) -> tuple[float, float]:
        """(base, quote) the position holds at the pool's current tick."""
        sp, sa, sb = (
            self._sqrt(self.pool.tick),
            self._sqrt(self.lower_tick),
            self._sqrt(self.upper_tick),
        )
        sp = min(max(sp, sa), sb)
        x = self.liquidity * (sb - sp) / (sp * sb)
        y = self.liquidity * (sp - sa)
        return (x, y) if self.pool.base_is_token0 else (y, x)


@dataclass
class FakeTx:
    polls_left: int
    final_status: int
    fee: float
    error: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    op: str
    query: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeGatewayServer:
    family: Family = "unified"
    ssl_context: ssl.SSLContext | None = None
    open_mode: OpenMode = "confirmed"
    pending_polls: int = 2
    revert_reason: str = "REVERTED (CALL_EXCEPTION): Price slippage check"
    fail_close: bool = False
    close_pending_no_hash: bool = False  # the close goes through but answers 500
    fail_remove: bool = False
    fail_quote: bool = False
    rate_limit_next: int = 0
    gas_fee: float = 0.002
    fee_per_sample: tuple[float, float] = (0.0005, 1.5)  # base, quote per in-range sample
    amounts_as_strings: bool = False
    tick_path: list[int] = field(default_factory=list)
    pools: dict[str, FakePool] = field(default_factory=dict)
    positions: dict[str, FakePosition] = field(default_factory=dict)
    txs: dict[str, FakeTx] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    # --- lifecycle ---

    async def __aenter__(self) -> FakeGatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        scheme = "https" if self.ssl_context else "http"
        self.base_url = f"{scheme}://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- set-up and inspection ---

    def add_pool(self, pool: FakePool) -> FakePool:
        self.pools[pool.address.lower()] = pool
        return pool

    def count(self, op: str) -> int:
        return sum(r.op == op for r in self.requests)

    def open_positions(self) -> list[FakePosition]:
        return list(self.positions.values())

    # --- plumbing ---

    def _json(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            body=orjson.dumps(body),
            status=status,
            content_type="application/json",
            headers=headers,
        )

    def _error(self, status: int, error: str, message: str) -> web.Response:
        body = {"statusCode": status, "error": error, "message": message}
        return self._json(body, status)

    def _num(self, value: float) -> float | str:
        return repr(value) if self.amounts_as_strings else value

    def _op(self, method: str, path: str) -> str | None:
        if path == "/" and method == "GET":
            return "health"
        if path == "/chains/ethereum/poll" and method == "POST":
            return "poll"
        if path.startswith("/tokens/") and method == "GET":
            return "token"
        prefix, ops = (
            ("/trading/clmm/", UNIFIED_OPS)
            if self.family == "unified"
            else ("/connectors/uniswap/clmm/", LEGACY_OPS)
        )
        if path.startswith(prefix):
            op = ops.get(path[len(prefix) :])
            writes = {"open", "close", "remove", "collect_fees"}
            if op is not None and (method == "POST") == (op in writes):
                return op
        return None

    async def _dispatch(self, request: web.Request) -> web.Response:
        body = None
        if request.can_read_body:
            raw = await request.read()
            body = orjson.loads(raw) if raw else None
        op = self._op(request.method, request.path)
        query = dict(request.query)
        self.requests.append(
            RecordedRequest(request.method, request.path, op or "missing", query, body)
        )
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            return self._json(
                {
                    "statusCode": 429,
                    "error": "Too Many Requests",
                    "message": "Rate limit exceeded, retry in 1 second",
                },
                429,
                {"Retry-After": "1"},
            )
        if op is None:
            return self._error(
                404, "Not Found", f"Route {request.method}:{request.path_qs} not found"
            )
        args: dict[str, Any] = dict(request.query) if body is None else dict(body)
        if op not in ("health", "poll", "token"):
            problem = self._check_venue(args)
            if problem:
                return self._error(400, "Bad Request", problem)
        handler = getattr(self, f"_h_{op}")
        result: web.Response = handler(args)
        return result

    def _check_venue(self, args: dict[str, Any]) -> str | None:
        if self.family == "unified":
            if args.get("connector") != "uniswap" or not args.get("chainNetwork"):
                return "connector and chainNetwork are required"
            if str(args["chainNetwork"]).split("-", 1)[0] != "ethereum":
                return f"Unsupported chain: {args['chainNetwork']}"
        elif not args.get("network") or "connector" in args:
            return "network is required (legacy routes take no connector)"
        return None

    def _pool(self, args: dict[str, Any]) -> FakePool | None:
        pool = self.pools.get(str(args.get("poolAddress", "")).lower())
        network = args.get("network") or str(args.get("chainNetwork", "-")).split("-", 1)[1]
        return pool if pool is not None and pool.network == network else None

    # --- reads ---

    def _h_health(self, args: dict[str, Any]) -> web.Response:
        return self._json({"status": "ok"})

    def _h_token(self, args: dict[str, Any]) -> web.Response:
        return self._error(404, "Not Found", "Token not found")  # exercise the fallback table

    def _h_pool_info(self, args: dict[str, Any]) -> web.Response:
        pool = self._pool(args)
        if pool is None:
            if self.family == "legacy":
                return self._error(500, "Internal Server Error", "Failed to fetch pool info")
            return self._error(404, "Not Found", f"Pool not found: {args.get('poolAddress')}")
        if self.tick_path and self.count("pool_info") > 1:
            pool.tick = self.tick_path.pop(0)
        for position in self.positions.values():
            if position.pool is pool and position.lower_tick <= pool.tick < position.upper_tick:
                position.base_fee += self.fee_per_sample[0]
                position.quote_fee += self.fee_per_sample[1]
        return self._json(
            {
                "address": pool.address,
                "baseTokenAddress": pool.base[1],
                "quoteTokenAddress": pool.quote[1],
                "binStep": 10,
                "feePct": pool.fee_pips / 10_000,
                "price": self._num(pool.price_at(pool.tick)),
                "baseTokenAmount": 1000.0,
                "quoteTokenAmount": 3_000_000.0,
                "activeBinId": pool.tick,
            }
        )

    def _h_quote_position(self, args: dict[str, Any]) -> web.Response:
        if self._pool(args) is None:
            return self._error(404, "Not Found", "Pool not found")
        if self.fail_quote:
            return self._error(400, "Bad Request", "Insufficient liquidity for the quoted range")
        base = float(args.get("baseTokenAmount", 0) or 0)
        quote = float(args.get("quoteTokenAmount", 0) or 0)
        slip = 1 + float(args.get("slippagePct", 1) or 0) / 100
        return self._json(
            {
                "baseLimited": True,
                "baseTokenAmount": self._num(base),
                "quoteTokenAmount": self._num(quote),
                "baseTokenAmountMax": self._num(base * slip),
                "quoteTokenAmountMax": self._num(quote * slip),
                "liquidity": "123456789",
            }
        )

    def _position_json(self, p: FakePosition) -> dict[str, Any]:
        base, quote = p.amounts()
        return {
            "address": p.address,
            "poolAddress": p.pool.address,
            "baseTokenAddress": p.pool.base[1],
            "quoteTokenAddress": p.pool.quote[1],
            "baseTokenAmount": self._num(base),
            "quoteTokenAmount": self._num(quote),
            "baseFeeAmount": self._num(p.base_fee),
            "quoteFeeAmount": self._num(p.quote_fee),
            "lowerBinId": p.lower_tick,
            "upperBinId": p.upper_tick,
            "lowerPrice": p.pool.price_at(p.lower_tick),
            "upperPrice": p.pool.price_at(p.upper_tick),
            "price": p.pool.price_at(p.pool.tick),
        }

    def _h_positions_owned(self, args: dict[str, Any]) -> web.Response:
        wallet = str(args.get("walletAddress", "")).lower()
        listed = []
        for p in self.positions.values():
            if p.visible_after > 0:
                p.visible_after -= 1
                continue
            if p.wallet.lower() == wallet:
                listed.append(self._position_json(p))
        return self._json(listed)

    def _h_position_info(self, args: dict[str, Any]) -> web.Response:
        p = self.positions.get(str(args.get("positionAddress")))
        if p is None or p.visible_after > 0:
            return self._error(404, "Not Found", "Position not found or closed")
        return self._json(self._position_json(p))

    def _h_poll(self, args: dict[str, Any]) -> web.Response:
        sig = str(args.get("signature"))
        tx = self.txs.get(sig)
        if tx is None:
            status, fee, error = -1, None, "transaction not found"
        elif tx.polls_left > 0:
            tx.polls_left -= 1
            status, fee, error = 0, None, None
        else:
            status, fee, error = tx.final_status, tx.fee, tx.error
        return self._json(
            {
                "currentBlock": 100,
                "signature": sig,
                "txBlock": 99 if status != 0 else None,
                "txStatus": status,
                "fee": fee,
                "error": error,
                "txData": None,
            }
        )

    # --- writes ---

    def _sig(self) -> str:
        return "0x" + f"{next(self._ids):064x}"

    def _h_open(self, args: dict[str, Any]) -> web.Response:
        pool = self._pool(args)
        if pool is None:
            return self._error(404, "Not Found", "Pool not found")
        sig = self._sig()
        position = FakePosition(
            address=str(next(self._ids)),
            pool=pool,
            wallet=str(args["walletAddress"]),
            lower_tick=pool.tick_for_price(float(args["lowerPrice"])),
            upper_tick=pool.tick_for_price(float(args["upperPrice"])),
        )
        if pool.base_is_token0 is False:  # price bounds invert with the orientation
            position.lower_tick, position.upper_tick = (
                min(position.lower_tick, position.upper_tick),
                max(position.lower_tick, position.upper_tick),
            )
        position.deposit(
            float(args.get("baseTokenAmount") or 0), float(args.get("quoteTokenAmount") or 0)
        )
        base_added, quote_added = position.amounts()
        mode = self.open_mode
        if mode == "reverted":
            self.txs[sig] = FakeTx(0, -1, self.gas_fee, self.revert_reason)
            return self._json({"signature": sig, "status": -1})
        if mode == "lost":
            return self._error(500, "Internal Server Error", "Failed to open position")
        self.positions[position.address] = position
        if mode == "pending_no_hash":
            position.visible_after = self.pending_polls
            return self._error(
                500, "Internal Server Error", "Failed to open position: transaction pending"
            )
        if mode == "pending_hash":
            self.txs[sig] = FakeTx(self.pending_polls, 1, self.gas_fee)
            return self._json({"signature": sig, "status": 0})
        return self._json(
            {
                "signature": sig,
                "status": 1,
                "data": {
                    "fee": self._num(self.gas_fee),
                    "positionAddress": position.address,
                    "positionRent": 0,
                    "baseTokenAmountAdded": self._num(base_added),
                    "quoteTokenAmountAdded": self._num(quote_added),
                },
            }
        )

    def _owned(self, args: dict[str, Any]) -> FakePosition | None:
        p = self.positions.get(str(args.get("positionAddress")))
        if p is None or p.wallet.lower() != str(args.get("walletAddress", "")).lower():
            return None
        return p

    def _h_close(self, args: dict[str, Any]) -> web.Response:
        p = self._owned(args)
        if p is None:
            return self._error(404, "Not Found", "Position not found")
        if self.fail_close:
            return self._error(500, "Internal Server Error", "Failed to close position")
        del self.positions[p.address]
        if self.close_pending_no_hash:
            return self._error(500, "Internal Server Error", "Failed to close position")
        base, quote = p.amounts()
        return self._json(
            {
                "signature": self._sig(),
                "status": 1,
                "data": {
                    "fee": self._num(self.gas_fee),
                    "positionRentRefunded": 0,
                    "baseTokenAmountRemoved": self._num(base),
                    "quoteTokenAmountRemoved": self._num(quote),
                    "baseFeeAmountCollected": self._num(p.base_fee),
                    "quoteFeeAmountCollected": self._num(p.quote_fee),
                },
            }
        )

    def _h_remove(self, args: dict[str, Any]) -> web.Response:
        p = self._owned(args)
        if p is None:
            return self._error(404, "Not Found", "Position not found")
        if self.fail_remove:
            return self._error(500, "Internal Server Error", "Failed to remove liquidity")
        share = float(args.get("percentageToRemove", 100)) / 100
        held_base, held_quote = p.amounts()
        base, quote = held_base * share, held_quote * share
        p.liquidity *= 1 - share
        return self._json(
            {
                "signature": self._sig(),
                "status": 1,
                "data": {
                    "fee": self._num(self.gas_fee),
                    "baseTokenAmountRemoved": self._num(base),
                    "quoteTokenAmountRemoved": self._num(quote),
                },
            }
        )

    def _h_collect_fees(self, args: dict[str, Any]) -> web.Response:
        p = self._owned(args)
        if p is None:
            return self._error(404, "Not Found", "Position not found")
        base, quote = p.base_fee, p.quote_fee
        p.base_fee = p.quote_fee = 0.0
        return self._json(
            {
                "signature": self._sig(),
                "status": 1,
                "data": {
                    "fee": self._num(self.gas_fee),
                    "baseFeeAmountCollected": self._num(base),
                    "quoteFeeAmountCollected": self._num(quote),
                },
            }
        )
