"""RealClmmEnv against the fake Gateway: the live episode end to end and every failure path."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.env import gateway as gateway_module
from clmmd.env.base import (
    KNOWN_POOLS,
    ExecutionRequest,
    ExecutionSkipped,
    MarketInputs,
    PoolValidationError,
)
from clmmd.env.gateway import GatewayClient
from clmmd.env.gateway_errors import TransactionReverted
from clmmd.env.mock import MockClmmEnv
from clmmd.env.real import LiveExecutionError, RealClmmEnv, real_env_from_settings
from tests.conftest import CapturedLogs
from tests.fakes.gateway_server import FakeGatewayServer, FakePool

POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]
WALLET = "0x1111111111111111111111111111111111111111"
TICK = 196_250  # WETH ~ $2,970 in the USDC/WETH pool (token0 USDC)


def request(**override: Any) -> ExecutionRequest:
    fields: dict[str, Any] = {
        "run_id": "run_1",
        "episode_id": "ep_1",
        "pool": POOL,
        "tick_lower": TICK - 600,
        "tick_upper": TICK + 600,
        "size_usd": 1000.0,
        "risk_scalar": 0.5,
        "horizon_hours": 1.0,
        "seed": 7,
        "market": MarketInputs(eth_price_usd=3000.0),
    }
    fields.update(override)
    return ExecutionRequest(**fields)


@pytest.fixture(params=["unified", "legacy"])
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[FakeGatewayServer]:
    async with FakeGatewayServer(family=request.param) as server:
        server.add_pool(FakePool.usdc_weth(TICK))
        yield server


@pytest.fixture
async def client(gateway: FakeGatewayServer, clock: FakeClock) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(clock, gateway.base_url) as c:
        yield c


def make_env(client: GatewayClient, clock: FakeClock, **override: Any) -> RealClmmEnv:
    fields: dict[str, Any] = {
        "client": client,
        "wallet_address": WALLET,
        "chain": "ethereum",
        "network": "mainnet",
        "live_risk_ack": True,
        "max_position_usd": 600.0,
        "clock": clock,
        "sample_interval_s": 300.0,
    }
    fields.update(override)
    return RealClmmEnv(**fields)


async def test_open_hold_close_reports_amounts_fees_and_gas(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    outcome = await make_env(client, clock).execute(request())
    sim = outcome.simulation
    assert (gateway.count("open"), gateway.count("close")) == (1, 1)
    assert gateway.open_positions() == []
    assert outcome.size_usd_applied == 500.0 and outcome.risk_scalar_applied == 0.5
    assert sim["source"] == "live" and sim["close_method"] == "close"
    assert len(sim["transactions"]) == 2 and all(t.startswith("0x") for t in sim["transactions"])
    assert sim["position_id"] and sim["route_family"] == gateway.family
    # The amounts sent are what the quote answered, worth the applied size at the open price.
    assert sim["initial_value_usd"] == pytest.approx(500.0, rel=1e-6)
    assert sim["base_token_amount_added"] > 0 and sim["quote_token_amount_added"] > 0
    assert sim["gas_paid_native"] == pytest.approx(2 * gateway.gas_fee)
    assert outcome.gas_cost_usd == pytest.approx(2 * gateway.gas_fee * 3000.0)
    # 12 five-minute samples, all in range; each accrued fees on the fake chain.
    assert sim["price_samples"] == 12 and outcome.time_in_range_pct == 100.0
    assert sim["quote_fee_collected"] > 12 * gateway.fee_per_sample[1] - 1e-9
    assert outcome.fees_usd > 0
    assert outcome.pnl_usd == pytest.approx(
        sim["lp_value_end_usd"] + outcome.fees_usd - sim["initial_value_usd"] - outcome.gas_cost_usd
    )
    assert clock.slept.count(300.0) == 12  # held for the horizon on the injected clock
    open_request = next(r for r in gateway.requests if r.op == "open")
    assert open_request.body is not None and open_request.body["walletAddress"] == WALLET


async def test_a_pool_whose_base_is_token0_is_priced_the_other_way(clock: FakeClock) -> None:
    weth_usdt = KNOWN_POOLS["0x11b815efb8f581194ae79006d24e0d814b7697f6"]  # token0 WETH
    fake = FakePool(
        address=weth_usdt.address,
        token0=("WETH", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", 18),
        token1=("USDT", "0xdAC17F958D2ee523a2206206994597C13D831ec7", 6),
        fee_pips=500,
        tick=-196_250,
        base_is_token0=True,
    )
    async with FakeGatewayServer() as server, GatewayClient(clock, server.base_url) as c:
        server.add_pool(fake)
        outcome = await make_env(c, clock).execute(
            request(pool=weth_usdt, tick_lower=-196_850, tick_upper=-195_650)
        )
    sim = outcome.simulation
    assert sim["base_is_token0"] is True
    assert 2900 < sim["price_open"] < 3100  # USDT per WETH
    assert sim["lower_price"] < sim["price_open"] < sim["upper_price"]
    assert sim["initial_value_usd"] == pytest.approx(500.0, rel=1e-6)
    assert outcome.time_in_range_pct == 100.0


async def test_time_in_range_follows_the_sampled_price(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.tick_path = [TICK] * 3 + [TICK + 5000] * 9  # leaves the range after 3 samples
    outcome = await make_env(client, clock).execute(request())
    assert outcome.time_in_range_pct == pytest.approx(25.0)
    assert outcome.il_usd > 0  # the price moved: holding beats the LP position


async def test_pending_without_hash_is_reconciled_without_a_second_open(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode, gateway.pending_polls = "pending_no_hash", 2
    outcome = await make_env(client, clock, reconcile_interval_s=10.0).execute(request())
    assert gateway.count("open") == 1
    assert outcome.simulation["open_reconciled"] is True
    assert outcome.simulation["close_method"] == "close"
    assert clock.slept.count(10.0) == 2  # two reconciliation checks saw nothing yet


async def test_pending_with_hash_is_polled_until_confirmed(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode, gateway.pending_polls = "pending_hash", 3
    outcome = await make_env(client, clock).execute(request())
    assert gateway.count("open") == 1 and gateway.count("poll") == 4
    assert outcome.simulation["gas_paid_native"] == pytest.approx(2 * gateway.gas_fee)
    assert outcome.simulation["base_token_amount_added"] > 0  # read back from positions-owned


async def test_open_that_never_appears_fails_without_resending(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode = "lost"
    with pytest.raises(LiveExecutionError, match="not re-sent"):
        await make_env(client, clock, reconcile_checks=3).execute(request())
    assert gateway.count("open") == 1
    assert gateway.count("close") == 0


async def test_reverted_open_raises_with_the_reason(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode = "reverted"
    with pytest.raises(TransactionReverted, match=r"reverted: REVERTED .*Price slippage check"):
        await make_env(client, clock).execute(request())
    assert gateway.count("open") == 1


async def test_close_failure_falls_back_to_remove_and_collect(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.fail_close = True
    outcome = await make_env(client, clock).execute(request())
    sim = outcome.simulation
    assert (gateway.count("close"), gateway.count("remove"), gateway.count("collect_fees")) == (
        1,
        1,
        1,
    )
    remove = next(r for r in gateway.requests if r.op == "remove")
    assert remove.body is not None and remove.body["percentageToRemove"] == 100.0
    assert sim["close_method"] == "remove+collect"
    assert len(sim["transactions"]) == 3  # open, remove, collect
    assert sim["quote_fee_collected"] > 0 and outcome.fees_usd > 0
    assert sim["initial_value_usd"] == pytest.approx(sim["lp_value_end_usd"], rel=1e-6)


async def test_a_close_that_went_through_is_reconciled_not_repeated(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.close_pending_no_hash = True
    outcome = await make_env(client, clock).execute(request())
    assert outcome.simulation["close_method"] == "close_reconciled"
    assert (gateway.count("close"), gateway.count("remove")) == (1, 0)
    assert outcome.simulation["quote_fee_collected"] > 0  # from the pre-close snapshot


async def test_failed_close_and_fallback_names_the_open_position(
    gateway: FakeGatewayServer,
    client: GatewayClient,
    clock: FakeClock,
    captured_logs: CapturedLogs,
) -> None:
    gateway.fail_close = gateway.fail_remove = True
    with pytest.raises(LiveExecutionError, match="close it by hand"):
        await make_env(client, clock, reconcile_checks=2).execute(request())
    (still_open,) = gateway.open_positions()
    assert [e["position"] for e in captured_logs.events("live_position_may_be_open")] == [
        still_open.address
    ]


@pytest.mark.parametrize(
    ("env_override", "req_override", "gate"),
    [
        ({"exec_mode": "mock"}, {}, "EXEC_MODE"),
        ({"live_risk_ack": False}, {}, "I_UNDERSTAND_LIVE_RISK"),
        ({"max_position_usd": 400.0}, {}, "max_position_usd"),
        ({}, {"risk_scalar": 1.0}, "max_position_usd"),  # 1000 × 1.0 > 600
    ],
)
async def test_gates_skip_before_any_write(
    gateway: FakeGatewayServer,
    client: GatewayClient,
    clock: FakeClock,
    env_override: dict[str, Any],
    req_override: dict[str, Any],
    gate: str,
) -> None:
    with pytest.raises(ExecutionSkipped) as info:
        await make_env(client, clock, **env_override).execute(request(**req_override))
    assert info.value.gate == gate
    assert not any(r.method == "POST" for r in gateway.requests)


async def test_failed_quote_skips_on_the_quote_gate(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.fail_quote = True
    with pytest.raises(ExecutionSkipped) as info:
        await make_env(client, clock).execute(request())
    assert info.value.gate == "quote"
    assert "Insufficient liquidity" in str(info.value)
    assert gateway.count("open") == 0


async def test_pool_validation_failure_raises_before_anything_else(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    with pytest.raises(PoolValidationError) as info:
        await make_env(client, clock).execute(request(pool=replace(POOL, fee_pips=100)))
    assert info.value.field == "fee_tier"
    with pytest.raises(PoolValidationError) as info:
        await make_env(client, clock, network="base").execute(request())
    assert info.value.field == "network"
    assert gateway.count("quote_position") == 0 and gateway.count("open") == 0


async def test_health_reports_ok_with_latency_or_unreachable(
    client: GatewayClient, clock: FakeClock
) -> None:
    health = await make_env(client, clock).health()
    assert health.status == "ok" and health.latency_ms is not None
    async with GatewayClient(clock, "http://127.0.0.1:9", read_attempts=1) as dead:
        assert (await make_env(dead, clock).health()).status == "unreachable"


def test_real_env_is_refused_outside_real_mode(clock: FakeClock) -> None:
    class Mock:
        exec_mode = "mock"
        gateway_wallet_address = WALLET
        max_position_usd = 100.0

    with pytest.raises(ValueError, match="only built when EXEC_MODE is real"):
        real_env_from_settings(Mock(), clock)


async def test_mock_mode_never_opens_a_socket_or_builds_a_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("mock mode touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse)
    monkeypatch.setattr(gateway_module.GatewayClient, "__init__", refuse)
    env = MockClmmEnv()
    assert await env.health() is None
    outcome = await env.execute(request())
    assert outcome.simulation["source"] == "mock"
    # The guard is live: the same patches stop a Gateway client from connecting at all.
    with pytest.raises(AssertionError):
        socket.create_connection(("127.0.0.1", 9))
