"""The fake Gateway (tests/fakes) against the real Gateway v2.13: same calls, same answers' shapes.

Both get the same sequence of requests (pool-info, quote, balances, allowances, approvals, open,
positions, collect with nothing owed, remove, close, reads after the close, poll, status). For
each answer the status code, the JSON shape (keys and value types, recursively) and the
orientation (which token each route calls the base) must be the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.stack import Stack, http_json
from tests.fakes.gateway_server import FakeGatewayServer, FakePool

NET = "mainnet"
CLMM = "/connectors/uniswap/clmm"


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


call = http_json


def conversation(base: str, wallet: str, pool: str) -> dict[str, tuple[int, Any]]:
    """The same requests, in order, against one Gateway."""
    out: dict[str, tuple[int, Any]] = {}
    out["health"] = call(base, "GET", "/")
    out["pool_info"] = call(base, "GET", f"{CLMM}/pool-info", {"network": NET, "poolAddress": pool})
    out["pool_info_unified"] = call(
        base,
        "GET",
        "/trading/clmm/pool-info",
        {"connector": "uniswap", "chainNetwork": f"ethereum-{NET}", "poolAddress": pool},
    )
    price = out["pool_info"][1]["price"]
    prices = {"lowerPrice": price * 0.97, "upperPrice": price * 1.03}
    out["quote"] = call(
        base,
        "GET",
        f"{CLMM}/quote-position",
        {"network": NET, "poolAddress": pool, **prices, "baseTokenAmount": 1000},
    )
    tokens = {"network": NET, "address": wallet}
    out["balances"] = call(
        base, "POST", "/chains/ethereum/balances", {**tokens, "tokens": ["USDC", "WETH", "ETH"]}
    )
    out["allowances"] = call(
        base,
        "POST",
        "/chains/ethereum/allowances",
        {**tokens, "spender": "uniswap/clmm", "tokens": ["USDC", "WETH"]},
    )
    opened_body = {
        "network": NET,
        "walletAddress": wallet,
        "poolAddress": pool,
        **prices,
        "baseTokenAmount": 1000,
        "quoteTokenAmount": out["quote"][1]["quoteTokenAmountMax"],
        "slippagePct": 1,
    }
    out["open_without_allowance"] = call(base, "POST", f"{CLMM}/open-position", opened_body)
    for symbol, amount in (("USDC", "1000"), ("WETH", "1")):
        out[f"approve_{symbol}"] = call(
            base,
            "POST",
            "/chains/ethereum/approve",
            {**tokens, "spender": "uniswap/clmm", "token": symbol, "amount": amount},
        )
    out["open"] = call(base, "POST", f"{CLMM}/open-position", opened_body)
    position = out["open"][1]["data"]["positionAddress"]
    where = {"network": NET, "walletAddress": wallet}
    out["positions_owned"] = call(base, "GET", f"{CLMM}/positions-owned", where)
    out["position_info"] = call(
        base, "GET", f"{CLMM}/position-info", {**where, "positionAddress": position}
    )
    out["collect_nothing_owed"] = call(
        base, "POST", f"{CLMM}/collect-fees", {**where, "positionAddress": position}
    )
    out["remove_half"] = call(
        base,
        "POST",
        f"{CLMM}/remove-liquidity",
        {**where, "positionAddress": position, "percentageToRemove": 50},
    )
    out["close"] = call(
        base, "POST", f"{CLMM}/close-position", {**where, "positionAddress": position}
    )
    out["position_info_burned"] = call(
        base, "GET", f"{CLMM}/position-info", {**where, "positionAddress": position}
    )
    out["positions_owned_after"] = call(base, "GET", f"{CLMM}/positions-owned", where)
    out["poll"] = call(
        base,
        "POST",
        "/chains/ethereum/poll",
        {"network": NET, "signature": out["open"][1]["signature"]},
    )
    out["status"] = call(base, "GET", "/chains/ethereum/status", {"network": NET})
    return out


#: Answers whose content (not only shape) must agree: Gateway's own words for the failures.
SAME_MESSAGE = ("collect_nothing_owed", "position_info_burned")
#: Fields of poll's txData are ethers' transaction object; clmmd reads none of them.
OPAQUE = {"poll": ("txData",)}


async def test_the_fake_answers_in_the_real_gateways_shapes(stack: Stack) -> None:
    d = stack.deployment
    wallet = await asyncio.to_thread(stack.add_wallet, 10**18, 10_000 * 10**6, 5 * 10**18)
    real = await asyncio.to_thread(conversation, stack.gateway_url, wallet, d.pool)
    tick = real["pool_info"][1]["activeBinId"]
    async with FakeGatewayServer() as fake:
        fake.add_pool(FakePool.usdc_weth(tick))
        faked = await asyncio.to_thread(conversation, fake.base_url, wallet, d.pool)

    assert real.keys() == faked.keys()
    for name in real:
        (real_status, real_body), (fake_status, fake_body) = real[name], faked[name]
        assert real_status == fake_status, (name, real_body, fake_body)
        for opaque in OPAQUE.get(name, ()):
            real_body.pop(opaque, None)
            fake_body.pop(opaque, None)
        assert shape(real_body) == shape(fake_body), name
        if name in SAME_MESSAGE:
            assert real_body["message"] == fake_body["message"], name
    # Orientation: pool-info calls token0 (USDC) the base, the position routes WETH.
    for source in (real, faked):
        assert source["pool_info"][1]["baseTokenAddress"].lower() == d.usdc.lower()
        (owned,) = source["positions_owned"][1]
        assert owned["baseTokenAddress"].lower() == d.weth.lower()
        assert source["position_info"][1]["baseTokenAddress"].lower() == d.weth.lower()
        assert source["open_without_allowance"][1]["message"].startswith("Insufficient USDC")
        assert source["positions_owned_after"][1] == []
