"""Defects 5 and 6 provoked on the real Gateway v2.13 (the campaign test covers 1–4 there; a
reverted write, 7, cannot be provoked through v2.13's routes: it answers 400 without a hash,
so defect 7 is tested against the fake, which plays the older Gateways that do answer one).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clmmd.artifacts.base.clock import SystemClock
from clmmd.env.base import KNOWN_POOLS, ExecutionRequest
from clmmd.env.gateway import GatewayClient
from clmmd.env.gateway_errors import GatewayServerError
from clmmd.env.real import RealClmmEnv
from tests.e2e.chain import COLLECT, DECREASE, INCREASE, Trader
from tests.e2e.stack import Stack

POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


@pytest.fixture
async def env(stack: Stack) -> AsyncIterator[RealClmmEnv]:
    wallet = await asyncio.to_thread(stack.add_wallet, 10**19, 50_000 * 10**6, 20 * 10**18)
    clock = SystemClock()
    async with GatewayClient(clock, stack.gateway_url, write_timeout_s=120) as client:
        yield RealClmmEnv(
            client=client,
            wallet_address=wallet,
            chain="ethereum",
            network="mainnet",
            live_risk_ack=True,
            max_position_usd=20_000,
            clock=clock,
            sample_interval_s=2.0,
            reconcile_checks=8,
            reconcile_interval_s=3.0,
        )


def request_around(stack: Stack) -> ExecutionRequest:
    # token1 (WETH) per token0 (USDC) in raw units is 1e12 / (USDC per WETH).
    raw_price = 1e12 / stack.chain.weth_price_usdc(stack.deployment.pool)
    tick = round(math.log(raw_price) / math.log(1.0001))
    base = tick // 10 * 10
    return ExecutionRequest(
        run_id="e2e",
        episode_id="ep",
        pool=POOL,
        tick_lower=base - 300,
        tick_upper=base + 300,
        size_usd=4000.0,
        risk_scalar=1.0,
        horizon_hours=0.002,
        seed=1,
    )


async def test_an_open_whose_receipt_is_late_is_reconciled_with_oriented_amounts(
    stack: Stack, env: RealClmmEnv
) -> None:
    # Mining pauses during the open: Gateway gives up after its 10 s and answers 500 "Failed to
    # open position" without a hash; the block comes 3 s later.
    chain, sent = stack.chain, env.client.open_position

    def resume() -> None:
        chain.call("evm_mine", [])
        chain.call("evm_setAutomine", [True])

    async def late_open(*args: Any, **kwargs: Any) -> Any:
        chain.call("evm_setAutomine", [False])
        timer = threading.Timer(13.0, resume)
        timer.start()
        try:
            return await sent(*args, **kwargs)
        finally:
            await asyncio.to_thread(timer.join)

    env.client.open_position = late_open  # type: ignore[method-assign]
    outcome = await env.execute(request_around(stack))
    sim = outcome.simulation
    assert sim["open_reconciled"] is True and sim["close_method"] == "close"
    (added,) = chain.position_events(INCREASE, int(sim["position_id"]))
    assert sim["token0_added"] == pytest.approx(added[0] / 1e6, rel=1e-6)  # USDC
    assert sim["token1_added"] == pytest.approx(added[1] / 1e18, rel=1e-6)  # WETH
    assert sim["initial_value_usd"] == pytest.approx(4000.0, rel=0.02)
    # The mint was found on chain: the open's gas is the episode's, from its receipt.
    (opened,) = [t for t in sim["transaction_details"] if t["kind"] == "open"]
    assert opened["reconciled"] is True
    assert opened["gas_native"] == pytest.approx(chain.receipt(opened["hash"]).gas_wei / 1e18)


async def test_a_failed_close_ends_with_the_position_emptied_and_fees_from_the_chain(
    stack: Stack, env: RealClmmEnv, trader: Trader
) -> None:
    async def failing_close(*args: Any, **kwargs: Any) -> Any:
        raise GatewayServerError(500, "InternalServerError", "Failed to close position")

    env.client.close_position = failing_close  # type: ignore[method-assign]
    outcome = await env.execute(request_around(stack))
    sim = outcome.simulation
    kinds = [t["kind"] for t in sim["transaction_details"]]
    assert sim["close_method"] == "remove+collect" and kinds[-1] == "remove"
    position = int(sim["position_id"])
    assert stack.chain.position_liquidity(position) == 0
    # remove-liquidity collected everything: the real Gateway now has nothing to collect,
    # which is where the old fallback ended in "close it by hand".
    status, answer = await asyncio.to_thread(
        stack.gateway,
        "POST",
        "/connectors/uniswap/clmm/collect-fees",
        {"network": "mainnet", "walletAddress": env.wallet, "positionAddress": str(position)},
    )
    assert (status, answer["message"]) == (400, "No fees to collect")
    remove = stack.chain.receipt(sim["transactions"][-1])
    collected = stack.chain.npm_amounts(remove, COLLECT)
    decreased = stack.chain.npm_amounts(remove, DECREASE)
    assert sim["token0_fees"] == pytest.approx((collected[0] - decreased[0]) / 1e6, abs=1e-6)
    assert sim["token1_fees"] == pytest.approx((collected[1] - decreased[1]) / 1e18, abs=1e-12)
    assert sim["token0_fees"] > 0 or sim["token1_fees"] > 0
