"""A fake Hummingbot Gateway v2.13 (Uniswap CLMM) with an in-memory chain, for fast tests.

It answers in Gateway v2.13's shapes and orientation rules (checked against the real one by
``tests/e2e/test_contract_fake_vs_real.py``):

* pool-info, quote-position and open-position: base = the pool's token0; prices sent to quote
  and open are token1 per token0 in human units;
* position-info, positions-owned, close/remove/collect: base = WETH, else the lower address;
  positions-owned lists only positions with liquidity; position-info of a burned position is
  500 "Failed to get position info";
* fees accrue uncredited ("accrued") and become ``tokensOwed`` only when liquidity is touched,
  so right after swaps collect-fees answers 400 "No fees to collect" and close reports stale
  fees while "removed" includes what was owed — the receipt's events carry the truth;
* open checks the allowance (400 "Insufficient USDC allowance…"); approve/allowances/balances
  and ``/chains/ethereum/status`` (whose ``rpcUrl`` points at this server's ``/rpc``, which
  answers ``eth_getTransactionReceipt`` and ``eth_getLogs`` with Increase/Decrease/Collect logs)
  are served;
* a reverted open is 400 "Transaction failed…" without a hash; a receipt that does not come in
  Gateway's 10 s is 500 "Failed to open position" without a hash.

``family="legacy"`` plays an older Gateway without the unified ``/trading/clmm`` routes.
Knobs: ``open_mode``, ``fail_close``, ``close_pending_no_hash``, ``fail_remove``,
``fail_quote``, ``rate_limit_next``, ``enforce_allowances``, ``pending_polls``…
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
#: confirmed; pending_no_hash (v2.13: receipt late → 500, position appears later); lost (500,
#: nothing happened); reverted (v2.13: 400 without hash); old_pending (older Gateways: status 0
#: + hash, then poll); old_pending_reverted (the same, but the receipt says reverted).
OpenMode = Literal[
    "confirmed", "pending_no_hash", "lost", "reverted", "old_pending", "old_pending_reverted"
]

POSITION_MANAGER = "0xC36442b4a4522E871399CD717aBDD847Ab11FE88"
INCREASE = "0x3067048beee31b25b2f1681f88dac838c8bba36af25bfb2b7cf7473a5847e35f"
DECREASE = "0x26f6a048ee9138f2c0ce266f322cb99228e8d619ae2bff30c67f8dcf9d2377b4"
COLLECT = "0x40d0efd1a53d60ecbf40971b9daf7dc90178c3aadc7aab1765632738fa8b8f01"
GAS_USED = 200_000

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
CHAIN_OPS = {
    ("GET", "/chains/ethereum/status"): "status",
    ("POST", "/chains/ethereum/poll"): "poll",
    ("POST", "/chains/ethereum/balances"): "balances",
    ("POST", "/chains/ethereum/allowances"): "allowances",
    ("POST", "/chains/ethereum/approve"): "approve",
    ("POST", "/rpc"): "rpc",
}
WRITES = {"open", "close", "remove", "collect_fees"}


@dataclass
class FakePool:
    address: str
    token0: tuple[str, str, int]  # symbol, address, decimals
    token1: tuple[str, str, int]
    fee_pips: int
    tick: int
    network: str = "mainnet"

    @classmethod
    def usdc_weth(cls, tick: int = 196_250) -> FakePool:
        """Mainnet USDC/WETH 0.05 % (token0 USDC, token1 WETH)."""
        return cls(
            address="0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
            token0=("USDC", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", 6),
            token1=("WETH", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", 18),
            fee_pips=500,
            tick=tick,
        )

    @property
    def spacing(self) -> int:
        return {100: 1, 500: 10, 3000: 60, 10000: 200}[self.fee_pips]

    def price01(self, tick: int) -> float:
        """token1 per token0, human units."""
        return float(1.0001**tick * 10.0 ** (self.token0[2] - self.token1[2]))

    def tick_for(self, human_price01: float) -> int:
        """open-position's priceToTickWithDecimals + nearestUsableTick."""
        raw = human_price01 * 10.0 ** (self.token1[2] - self.token0[2])
        tick = math.floor(math.log(raw) / math.log(1.0001))
        return round(tick / self.spacing) * self.spacing

    @property
    def position_base_is_token0(self) -> bool:
        """The position routes' rule: WETH, else the lower address (token0)."""
        return self.token0[0] == "WETH" or self.token1[0] != "WETH"


@dataclass
class FakePosition:
    """A Uniswap V3 position with liquidity ``L`` in human units (so amounts follow the price).

    ``owed`` is the NFT's tokensOwed (what Gateway reads); ``accrued`` are fees earned but not
    yet credited (credited when liquidity is touched, all paid out by any collect).
    """

    address: str
    pool: FakePool
    wallet: str
    lower_tick: int
    upper_tick: int
    liquidity: float = 0.0
    owed: list[float] = field(default_factory=lambda: [0.0, 0.0])
    accrued: list[float] = field(default_factory=lambda: [0.0, 0.0])
    visible_after: int = 0  # positions-owned requests before it shows up (pending open)
    burned: bool = False

    def _sqrt(self, tick: int) -> float:
        return math.sqrt(self.pool.price01(tick))

    def deposit(self, amount0: float, amount1: float) -> None:
        """Set L from the amounts offered at the pool's tick (the scarcer side limits it)."""
        sp, sa, sb = (
            self._sqrt(self.pool.tick),
            self._sqrt(self.lower_tick),
            self._sqrt(self.upper_tick),
        )
        if sp <= sa:
            self.liquidity = amount0 * sa * sb / (sb - sa)
        elif sp < sb:
            self.liquidity = min(amount0 * sp * sb / (sb - sp), amount1 / (sp - sa))
        else:
            self.liquidity = amount1 / (sb - sa)

    def amounts(self, liquidity: float | None = None) -> tuple[float, float]:
        """(token0, token1) held at the pool's current tick."""
        big_l = self.liquidity if liquidity is None else liquidity
        sp, sa, sb = (
            self._sqrt(self.pool.tick),
            self._sqrt(self.lower_tick),
            self._sqrt(self.upper_tick),
        )
        sp = min(max(sp, sa), sb)
        return big_l * (sb - sp) / (sp * sb), big_l * (sp - sa)

    def credit(self) -> None:
        """Liquidity was touched: accrued fees become tokensOwed (the pool's burn(0) poke)."""
        self.owed = [self.owed[0] + self.accrued[0], self.owed[1] + self.accrued[1]]
        self.accrued = [0.0, 0.0]


@dataclass
class FakeTx:
    polls_left: int
    status: int  # receipt status: 1 succeeded, 0 reverted
    fee: float
    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    op: str
    query: dict[str, str]
    body: dict[str, Any] | None


def _word(value: int) -> str:
    return f"{value:064x}"


def _log(topic: str, token_id: str, a: int, b: int, c: int) -> dict[str, Any]:
    return {
        "address": POSITION_MANAGER,
        "topics": [topic, "0x" + _word(int(token_id))],
        "data": "0x" + _word(a) + _word(b) + _word(c),
    }


@dataclass
class FakeGatewayServer:
    family: Family = "unified"
    ssl_context: ssl.SSLContext | None = None
    open_mode: OpenMode = "confirmed"
    pending_polls: int = 2
    fail_close: bool = False
    close_pending_no_hash: bool = False  # the close goes through but answers 500
    fail_remove: bool = False
    fail_quote: bool = False
    rate_limit_next: int = 0
    enforce_allowances: bool = True
    serve_rpc: bool = True  # /chains/ethereum/status reports a node URL (this server's /rpc)
    gas_fee: float = 0.002
    fee_per_sample: tuple[float, float] = (1.5, 0.0005)  # token0, token1 per in-range sample
    tick_path: list[int] = field(default_factory=list)
    pools: dict[str, FakePool] = field(default_factory=dict)
    positions: dict[str, FakePosition] = field(default_factory=dict)
    txs: dict[str, FakeTx] = field(default_factory=dict)
    allowances: dict[str, float] = field(default_factory=dict)  # symbol -> human
    balances: dict[str, float] = field(
        default_factory=lambda: {"ETH": 10.0, "USDC": 1e7, "USDT": 1e7, "WETH": 1e4}
    )
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
        return [p for p in self.positions.values() if not p.burned]

    def approve_all(self) -> None:
        """Unlimited allowances for every token (tests that are not about approvals)."""
        for symbol in ("USDC", "WETH", "USDT", "DAI", "WBTC"):
            self.allowances[symbol] = float("inf")

    # --- plumbing ---

    def _json(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
        )

    def _error(self, status: int, error: str, message: str) -> web.Response:
        return self._json({"statusCode": status, "error": error, "message": message}, status)

    def _op(self, method: str, path: str) -> str | None:
        if path == "/" and method == "GET":
            return "health"
        if (method, path) in CHAIN_OPS:
            return CHAIN_OPS[(method, path)]
        if path.startswith("/tokens/") and method == "GET":
            return "token"
        prefixes = [("/connectors/uniswap/clmm/", LEGACY_OPS)]
        if self.family == "unified":
            prefixes.append(("/trading/clmm/", UNIFIED_OPS))
        for prefix, ops in prefixes:
            if path.startswith(prefix):
                op = ops.get(path[len(prefix) :])
                if op is not None and (method == "POST") == (op in WRITES):
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
        if self.rate_limit_next > 0 and op != "rpc":
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
        if request.path.startswith(("/connectors/", "/trading/")):
            problem = self._check_venue(request.path, args)
            if problem:
                return self._error(400, "Bad Request", problem)
        handler = getattr(self, f"_h_{op}")
        result: web.Response = handler(args)
        return result

    def _check_venue(self, path: str, args: dict[str, Any]) -> str | None:
        if path.startswith("/trading/"):
            if args.get("connector") != "uniswap" or not args.get("chainNetwork"):
                return "connector and chainNetwork are required"
            if str(args["chainNetwork"]).split("-", 1)[0] != "ethereum":
                return f"Unsupported chain: {args['chainNetwork']}"
            args["network"] = str(args["chainNetwork"]).split("-", 1)[1]
        elif not args.get("network") or "connector" in args:
            return "network is required (legacy routes take no connector)"
        return None

    def _pool(self, args: dict[str, Any]) -> FakePool | None:
        pool = self.pools.get(str(args.get("poolAddress", "")).lower())
        return pool if pool is not None and pool.network == args.get("network") else None

    def _token(self, symbol: str) -> tuple[str, str, int] | None:
        for pool in self.pools.values():
            for token in (pool.token0, pool.token1):
                if token[0] == symbol:
                    return token
        return None

    def _sig(self) -> str:
        return "0x" + f"{next(self._ids):064x}"

    def _mined(self, logs: list[dict[str, Any]], status: int = 1, polls: int = 0) -> str:
        sig = self._sig()
        self.txs[sig] = FakeTx(polls, status, self.gas_fee, logs)
        self.balances["ETH"] -= self.gas_fee
        return sig

    @staticmethod
    def _raw(pool: FakePool, amounts: tuple[float, float]) -> tuple[int, int]:
        return (
            round(amounts[0] * 10 ** pool.token0[2]),
            round(amounts[1] * 10 ** pool.token1[2]),
        )

    # --- reads ---

    def _h_health(self, args: dict[str, Any]) -> web.Response:
        return self._json({"status": "ok"})

    def _h_token(self, args: dict[str, Any]) -> web.Response:
        return self._error(404, "Not Found", "Token not found")  # exercise the fallback table

    def _h_status(self, args: dict[str, Any]) -> web.Response:
        return self._json(
            {
                "chain": "ethereum",
                "network": args.get("network", "mainnet"),
                "rpcUrl": self.base_url + "/rpc" if self.serve_rpc else "unavailable",
                "rpcProvider": "url",
                "currentBlockNumber": 100,
                "nativeCurrency": "ETH",
                "swapProvider": "uniswap/router",
            }
        )

    def _h_pool_info(self, args: dict[str, Any]) -> web.Response:
        pool = self._pool(args)
        if pool is None:
            return self._error(404, "Not Found", f"Pool not found: {args.get('poolAddress')}")
        if self.tick_path and self.count("pool_info") > 1:
            pool.tick = self.tick_path.pop(0)
        for position in self.open_positions():
            if position.pool is pool and position.lower_tick <= pool.tick < position.upper_tick:
                position.accrued[0] += self.fee_per_sample[0]
                position.accrued[1] += self.fee_per_sample[1]
        return self._json(
            {
                "address": pool.address,
                "baseTokenAddress": pool.token0[1],
                "quoteTokenAddress": pool.token1[1],
                "feePct": pool.fee_pips / 10_000,
                "price": pool.price01(pool.tick),
                "baseTokenAmount": 628633149987.566,
                "quoteTokenAmount": 0.628633149987566,
                "activeBinId": pool.tick,
                "binStep": pool.spacing,
            }
        )

    def _h_quote_position(self, args: dict[str, Any]) -> web.Response:
        if self._pool(args) is None:
            return self._error(404, "Not Found", "Pool not found")
        if self.fail_quote:
            return self._error(400, "Bad Request", "Insufficient liquidity for the quoted range")
        pool = self._pool(args)
        assert pool is not None
        lower = pool.tick_for(float(args["lowerPrice"]))
        upper = pool.tick_for(float(args["upperPrice"]))
        if lower >= upper:
            return self._error(400, "HttpError", "Lower price must be less than upper price")
        # Like the SDK's Position.fromAmounts: the side given (base = token0) sets L, the other
        # side is what that L needs at the current price.
        offered0 = float(args.get("baseTokenAmount") or 0) or 1e30
        offered1 = float(args.get("quoteTokenAmount") or 0) or 1e30
        probe = FakePosition("quote", pool, "", lower, upper)
        probe.deposit(offered0, offered1)
        amount0, amount1 = probe.amounts()
        return self._json(
            {
                "baseLimited": offered0 < 1e30,
                "baseTokenAmount": amount0,
                "quoteTokenAmount": amount1,
                "baseTokenAmountMax": float(args.get("baseTokenAmount") or amount0),
                "quoteTokenAmountMax": float(args.get("quoteTokenAmount") or amount1),
                "liquidity": str(int(probe.liquidity * 1e12)),
            }
        )

    def _position_json(self, p: FakePosition) -> dict[str, Any]:
        a0, a1 = p.amounts()
        base0 = p.pool.position_base_is_token0
        t0, t1 = p.pool.token0, p.pool.token1

        def pair(x0: float, x1: float) -> tuple[float, float]:
            return (x0, x1) if base0 else (x1, x0)

        base, quote = pair(a0, a1)
        base_fee, quote_fee = pair(p.owed[0], p.owed[1])
        return {
            "address": p.address,
            "poolAddress": p.pool.address,
            "baseTokenAddress": (t0 if base0 else t1)[1],
            "quoteTokenAddress": (t1 if base0 else t0)[1],
            "baseTokenAmount": base,
            "quoteTokenAmount": quote,
            "baseFeeAmount": base_fee,
            "quoteFeeAmount": quote_fee,
            "lowerBinId": p.lower_tick,
            "upperBinId": p.upper_tick,
            "lowerPrice": float(f"{p.pool.price01(p.lower_tick):.6g}"),
            "upperPrice": float(f"{p.pool.price01(p.upper_tick):.6g}"),
            "price": float(f"{p.pool.price01(p.pool.tick):.6g}"),
        }

    def _h_positions_owned(self, args: dict[str, Any]) -> web.Response:
        wallet = str(args.get("walletAddress", "")).lower()
        listed = []
        for p in self.open_positions():
            if p.visible_after > 0:
                p.visible_after -= 1
                continue
            if p.wallet.lower() == wallet and p.liquidity > 0:
                listed.append(self._position_json(p))
        return self._json(listed)

    def _h_position_info(self, args: dict[str, Any]) -> web.Response:
        p = self.positions.get(str(args.get("positionAddress")))
        if p is None or p.burned or p.visible_after > 0:
            return self._error(500, "InternalServerError", "Failed to get position info")
        return self._json(self._position_json(p))

    def _h_poll(self, args: dict[str, Any]) -> web.Response:
        sig = str(args.get("signature"))
        tx = self.txs.get(sig)
        if tx is None:
            status, block = -1, -1
        elif tx.polls_left > 0:
            tx.polls_left -= 1
            status, block = 0, -1
        else:
            status, block = 1, 99  # v2.13: any mined receipt, reverted or not
        return self._json(
            {
                "currentBlock": 100,
                "signature": sig,
                "txBlock": block,
                "txStatus": status,
                "txData": None,
                "fee": None,
            }
        )

    def _h_balances(self, args: dict[str, Any]) -> web.Response:
        tokens = args.get("tokens") or list(self.balances)
        return self._json({"balances": {t: self.balances.get(t, 0.0) for t in tokens}})

    def _h_allowances(self, args: dict[str, Any]) -> web.Response:
        approvals = {}
        for symbol in args.get("tokens", []):
            token = self._token(symbol)
            value = self.allowances.get(symbol, 0.0)
            decimals = token[2] if token else 18
            shown = "1e+59" if math.isinf(value) else f"{value:.{decimals}f}"
            approvals[symbol] = shown
        return self._json({"spender": POSITION_MANAGER, "approvals": approvals})

    def _h_approve(self, args: dict[str, Any]) -> web.Response:
        symbol = str(args.get("token"))
        token = self._token(symbol)
        if token is None:
            return self._error(400, "Bad Request", f"Token not found: {symbol}")
        amount = args.get("amount")
        value = float(amount) if amount else float("inf")
        self.allowances[symbol] = value
        sig = self._mined([])
        return self._json(
            {
                "signature": sig,
                "status": 1,
                "data": {
                    "tokenAddress": token[1],
                    "spender": POSITION_MANAGER,
                    "amount": "1e+59" if math.isinf(value) else f"{value:.{token[2]}f}",
                    "nonce": len(self.txs),
                    "fee": f"{self.gas_fee:.18f}",
                },
            }
        )

    def _h_rpc(self, args: dict[str, Any]) -> web.Response:
        if args.get("method") == "eth_getLogs":
            wanted = args["params"][0]["topics"]
            found = [
                {**entry, "transactionHash": sig}
                for sig, tx in self.txs.items()
                if tx.polls_left <= 0
                for entry in tx.logs
                if entry["topics"][: len(wanted)] == wanted
            ]
            return self._json({"jsonrpc": "2.0", "id": args.get("id"), "result": found})
        if args.get("method") != "eth_getTransactionReceipt":
            return self._json({"jsonrpc": "2.0", "id": args.get("id"), "error": {"code": -32601}})
        tx = self.txs.get(str(args["params"][0]))
        result = None
        if tx is not None and tx.polls_left <= 0:
            result = {
                "transactionHash": args["params"][0],
                "blockNumber": "0x63",
                "status": hex(tx.status),
                "gasUsed": hex(GAS_USED),
                "effectiveGasPrice": hex(round(tx.fee * 1e18 / GAS_USED)),
                "logs": tx.logs,
            }
        return self._json({"jsonrpc": "2.0", "id": args.get("id"), "result": result})

    # --- writes ---

    def _h_open(self, args: dict[str, Any]) -> web.Response:
        pool = self._pool(args)
        if pool is None:
            return self._error(404, "Not Found", "Pool not found")
        lower = pool.tick_for(float(args["lowerPrice"]))
        upper = pool.tick_for(float(args["upperPrice"]))
        if lower >= upper:
            return self._error(400, "HttpError", "Lower price must be less than upper price")
        amount0 = float(args.get("baseTokenAmount") or 0)  # base = token0 on this route
        amount1 = float(args.get("quoteTokenAmount") or 0)
        if self.enforce_allowances:
            for token, amount in ((pool.token0, amount0), (pool.token1, amount1)):
                have = self.allowances.get(token[0], 0.0)
                if amount > 0 and have * (1 + 1e-12) < amount:
                    return self._error(
                        400,
                        "HttpError",
                        f"Insufficient {token[0]} allowance. Please approve at least {amount} "
                        f"{token[0]} ({token[1]}) for the Position Manager ({POSITION_MANAGER})",
                    )
        position = FakePosition(
            str(next(self._ids)), pool, str(args["walletAddress"]), lower, upper
        )
        position.deposit(amount0, amount1)
        added = position.amounts()
        raw = self._raw(pool, added)
        logs = [_log(INCREASE, position.address, int(position.liquidity), raw[0], raw[1])]
        mode = self.open_mode
        if mode == "reverted":
            self._mined([], status=0)
            return self._error(
                400,
                "HttpError",
                "Transaction failed. Please check token balances, approvals, and position "
                "parameters.",
            )
        if mode == "lost":
            return self._error(500, "InternalServerError", "Failed to open position")
        if mode == "old_pending_reverted":
            sig = self._mined([], status=0, polls=self.pending_polls)
            return self._json({"signature": sig, "status": 0})
        self.positions[position.address] = position
        for token, amount in zip((pool.token0, pool.token1), added, strict=True):
            if token[0] in self.allowances:
                self.allowances[token[0]] -= amount
        if mode == "pending_no_hash":
            self._mined(logs)
            position.visible_after = self.pending_polls
            return self._error(500, "InternalServerError", "Failed to open position")
        if mode == "old_pending":
            sig = self._mined(logs, polls=self.pending_polls)
            return self._json({"signature": sig, "status": 0})
        sig = self._mined(logs)
        return self._json(
            {
                "signature": sig,
                "status": 1,
                "data": {
                    "fee": self.gas_fee,
                    "positionAddress": position.address,
                    "positionRent": 0,
                    "baseTokenAmountAdded": added[0],
                    "quoteTokenAmountAdded": added[1],
                },
            }
        )

    def _owned(self, args: dict[str, Any]) -> FakePosition | None:
        p = self.positions.get(str(args.get("positionAddress")))
        if p is None or p.burned or p.wallet.lower() != str(args.get("walletAddress", "")).lower():
            return None
        return p

    def _exit(
        self, p: FakePosition, share: float
    ) -> tuple[tuple[float, float], tuple[float, float], list[dict[str, Any]]]:
        """Decrease ``share`` of the liquidity and collect everything owed (as the SDK's
        remove/close calldata does): (principal, stale owed Gateway reads, receipt logs)."""
        principal = p.amounts(p.liquidity * share)
        stale_owed = (p.owed[0], p.owed[1])
        p.credit()
        collected = (principal[0] + p.owed[0], principal[1] + p.owed[1])
        p.owed = [0.0, 0.0]
        p.liquidity *= 1 - share
        raw_p, raw_c = self._raw(p.pool, principal), self._raw(p.pool, collected)
        logs = [
            _log(DECREASE, p.address, 1, raw_p[0], raw_p[1]),
            _log(COLLECT, p.address, 0, raw_c[0], raw_c[1]),
        ]
        return principal, stale_owed, logs

    def _oriented(self, p: FakePosition, amounts: tuple[float, float]) -> tuple[float, float]:
        return amounts if p.pool.position_base_is_token0 else (amounts[1], amounts[0])

    def _h_close(self, args: dict[str, Any]) -> web.Response:
        p = self._owned(args)
        if p is None:
            return self._error(400, "HttpError", "Position not found")
        if p.liquidity <= 0 and not any(p.owed):
            return self._error(
                400,
                "HttpError",
                "Position has already been closed or has no liquidity/fees to collect",
            )
        if self.fail_close:
            return self._error(500, "InternalServerError", "Failed to close position")
        principal, owed, logs = self._exit(p, 1.0)
        p.burned = True
        sig = self._mined(logs)
        if self.close_pending_no_hash:
            return self._error(500, "InternalServerError", "Failed to close position")
        removed = self._oriented(p, (principal[0] + owed[0], principal[1] + owed[1]))
        fees = self._oriented(p, owed)
        return self._json(
            {
                "signature": sig,
                "status": 1,
                "data": {
                    "fee": self.gas_fee,
                    "positionRentRefunded": 0,
                    "baseTokenAmountRemoved": removed[0],
                    "quoteTokenAmountRemoved": removed[1],
                    "baseFeeAmountCollected": fees[0],
                    "quoteFeeAmountCollected": fees[1],
                },
            }
        )

    def _h_remove(self, args: dict[str, Any]) -> web.Response:
        p = self._owned(args)
        if p is None:
            return self._error(400, "HttpError", "Position not found")
        if self.fail_remove:
            return self._error(500, "InternalServerError", "Failed to remove liquidity")
        principal, owed, logs = self._exit(p, float(args.get("percentageToRemove", 100)) / 100)
        removed = self._oriented(p, (principal[0] + owed[0], principal[1] + owed[1]))
        return self._json(
            {
                "signature": self._mined(logs),
                "status": 1,
                "data": {
                    "fee": self.gas_fee,
                    "baseTokenAmountRemoved": removed[0],
                    "quoteTokenAmountRemoved": removed[1],
                },
            }
        )

    def _h_collect_fees(self, args: dict[str, Any]) -> web.Response:
        p = self._owned(args)
        if p is None:
            return self._error(400, "HttpError", "Position not found")
        if not any(p.owed):
            return self._error(400, "HttpError", "No fees to collect")
        stale = (p.owed[0], p.owed[1])
        if p.liquidity > 0:
            p.credit()  # the position manager's collect pokes the pool first
        collected = (p.owed[0], p.owed[1])
        p.owed = [0.0, 0.0]
        raw = self._raw(p.pool, collected)
        fees = self._oriented(p, stale)
        return self._json(
            {
                "signature": self._mined([_log(COLLECT, p.address, 0, raw[0], raw[1])]),
                "status": 1,
                "data": {
                    "fee": self.gas_fee,
                    "baseFeeAmountCollected": fees[0],
                    "quoteFeeAmountCollected": fees[1],
                },
            }
        )
