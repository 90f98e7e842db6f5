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
    sent_before,
)
from clmmd.env.gateway import GatewayClient
from clmmd.env.gateway_errors import GatewayBadRequest, TransactionReverted
from clmmd.env.mock import MockClmmEnv
from clmmd.env.pricing import usd_price_to_tick
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
        # The snapshot's price is the pool's: the range needs no re-anchoring.
        "market": MarketInputs(price_usd=1e12 / 1.0001**TICK, eth_price_usd=3000.0),
    }
    fields.update(override)
    return ExecutionRequest(**fields)


@pytest.fixture(params=["unified", "legacy"])
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[FakeGatewayServer]:
    async with FakeGatewayServer(family=request.param) as server:
        server.add_pool(FakePool.usdc_weth(TICK))
        yield server


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
    assert sim["accounting"] == "receipts" and sim["receipts_source"] == "gateway_status"
    kinds = [t["kind"] for t in sim["transaction_details"]]
    assert kinds == ["approve", "approve", "open", "close"]
    assert all(t.startswith("0x") for t in sim["transactions"])
    assert sim["position_id"] and sim["route_family"] == gateway.family
    # The amounts sent are what the quote answered, worth the applied size at the open price.
    assert sim["initial_value_usd"] == pytest.approx(500.0, rel=1e-6)
    assert sim["token0_added"] > 0 and sim["token1_added"] > 0
    assert sim["gas_paid_native"] == pytest.approx(4 * gateway.gas_fee)
    # Gas is valued at this WETH pool's own close price, not an intel snapshot.
    assert sim["eth_price_source"] == "pool_price"
    assert outcome.gas_cost_usd == pytest.approx(4 * gateway.gas_fee * sim["volatile_usd_close"])
    # 12 five-minute samples, all in range; each accrued fees on the fake chain.
    assert sim["price_samples"] == 12 and outcome.time_in_range_pct == 100.0
    assert sim["token0_fees"] == pytest.approx(12 * gateway.fee_per_sample[0], rel=1e-6)
    assert outcome.pnl_usd == pytest.approx(
        sim["lp_value_end_usd"] + outcome.fees_usd - sim["initial_value_usd"] - outcome.gas_cost_usd
    )
    assert outcome.pnl_usd == pytest.approx(
        outcome.hodl_return_usd - outcome.il_usd + outcome.fees_usd - outcome.gas_cost_usd
    )
    assert clock.slept.count(300.0) == 12  # held for the horizon on the injected clock
    open_request = next(r for r in gateway.requests if r.op == "open")
    assert open_request.body is not None and open_request.body["walletAddress"] == WALLET


async def test_a_pool_whose_token0_is_weth_is_priced_the_other_way(clock: FakeClock) -> None:
    weth_usdt = KNOWN_POOLS["0x11b815efb8f581194ae79006d24e0d814b7697f6"]  # token0 WETH
    fake = FakePool(
        address=weth_usdt.address,
        token0=("WETH", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", 18),
        token1=("USDT", "0xdAC17F958D2ee523a2206206994597C13D831ec7", 6),
        fee_pips=500,
        tick=-196_250,
    )
    async with FakeGatewayServer() as server, GatewayClient(clock, server.base_url) as c:
        server.add_pool(fake)
        outcome = await make_env(c, clock).execute(
            request(pool=weth_usdt, tick_lower=-196_850, tick_upper=-195_650)
        )
    sim = outcome.simulation
    assert 2900 < sim["volatile_usd_open"] < 3100  # USDT per WETH
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


# --- defect 1: orientation by token addresses -------------------------------------------


async def test_close_answers_are_oriented_by_the_positions_token_addresses(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    # Only Gateway's answers (no node): close speaks "WETH is base" while pool-info and open
    # speak "token0 (USDC) is base". Read with pool-info's orientation, a $500 position was
    # once valued in millions on close.
    gateway.serve_rpc = False
    gateway.fee_per_sample = (0.0, 0.0)
    gateway.approve_all()
    outcome = await make_env(client, clock).execute(request())
    sim = outcome.simulation
    assert sim["lp_value_end_usd"] == pytest.approx(sim["initial_value_usd"], rel=1e-6)
    assert outcome.il_usd == pytest.approx(0.0, abs=1e-6)
    assert sim["accounting"] == "gateway_answers"
    assert sim["token0_removed"] == pytest.approx(sim["token0_added"], rel=1e-6)  # USDC
    # Ranges go out as the open route reads them: token1 (WETH) per token0 (USDC).
    open_request = next(r for r in gateway.requests if r.op == "open")
    assert open_request.body is not None
    assert 0 < open_request.body["lowerPrice"] < open_request.body["upperPrice"] < 0.001
    (position,) = [p for p in gateway.positions.values()]
    assert (position.lower_tick, position.upper_tick) == (TICK - 600, TICK + 600)


# --- defect 2: balances, allowances and approvals --------------------------------------


async def test_open_approves_exactly_what_it_sends_and_records_the_approvals(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    outcome = await make_env(client, clock).execute(request())
    approvals = [r.body for r in gateway.requests if r.op == "approve"]
    opened = next(r.body for r in gateway.requests if r.op == "open")
    assert approvals and opened is not None
    sent = {"USDC": opened["baseTokenAmount"], "WETH": opened["quoteTokenAmount"]}
    for body in approvals:
        assert body is not None and body["spender"] == "uniswap/clmm"
        assert 0 <= float(body["amount"]) - sent[body["token"]] < 1e-5  # exact, rounded up
    details = [t for t in outcome.simulation["transaction_details"] if t["kind"] == "approve"]
    assert {t["token_symbol"] for t in details} == {"USDC", "WETH"}
    assert all(t["policy"] == "exact" and t["gas_native"] > 0 for t in details)
    assert outcome.simulation["approval_policy"] == "exact"


async def test_unlimited_policy_approves_once_and_never_policy_skips(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    await make_env(client, clock, approval_policy="unlimited").execute(request())
    assert all(
        r.body is not None and "amount" not in r.body for r in gateway.requests if r.op == "approve"
    )
    await make_env(client, clock, approval_policy="unlimited").execute(request())
    assert gateway.count("approve") == 2  # not again: the allowance is still there
    gateway.allowances.clear()
    writes_before = sum(r.method == "POST" and r.op != "balances" for r in gateway.requests)
    with pytest.raises(ExecutionSkipped) as info:
        await make_env(client, clock, approval_policy="never").execute(request())
    assert info.value.gate == "allowance" and "USDC" in str(info.value)
    assert gateway.count("approve") == 2 and gateway.count("open") == 2
    assert writes_before <= sum(r.method == "POST" for r in gateway.requests)


async def test_a_wallet_short_of_tokens_is_skipped_before_any_write(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.balances["WETH"] = 0.01
    with pytest.raises(ExecutionSkipped) as info:
        await make_env(client, clock).execute(request())
    assert info.value.gate == "wallet_funds" and "WETH" in str(info.value)
    assert gateway.count("approve") == 0 and gateway.count("open") == 0


# --- defect 3: fees from what actually left the pool -----------------------------------


async def test_fees_are_what_left_the_pool_not_the_stale_tokens_owed(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    # The fake, like Gateway v2.13, reports tokensOwed (0 until liquidity is touched) as the
    # close's fees and folds it into "removed"; the Collect/DecreaseLiquidity events know.
    gateway.approve_all()
    outcome = await make_env(client, clock).execute(request())
    sim = outcome.simulation
    earned0, earned1 = 12 * gateway.fee_per_sample[0], 12 * gateway.fee_per_sample[1]
    usd = 1.0 / FakePool.usdc_weth(TICK).price01(TICK)
    assert outcome.fees_usd == pytest.approx(earned0 + earned1 * usd, rel=1e-6)
    assert sim["token0_fees"] == pytest.approx(earned0, rel=1e-6)
    assert sim["token1_fees"] == pytest.approx(earned1, rel=1e-6)
    assert sim["lp_value_end_usd"] == pytest.approx(sim["initial_value_usd"], rel=1e-6)


# --- defect 4: gas of every transaction from its receipt -------------------------------


async def test_gas_of_every_transaction_comes_from_its_receipt(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode, gateway.pending_polls = "old_pending", 3  # no fee in the answer
    gateway.approve_all()
    outcome = await make_env(client, clock).execute(request())
    sim = outcome.simulation
    assert gateway.count("open") == 1 and gateway.count("poll") == 4
    assert sim["gas_paid_native"] == pytest.approx(2 * gateway.gas_fee)  # open + close
    assert [t["source"] for t in sim["transaction_details"]] == ["receipt"] * 2
    assert sim["token0_added"] > 0  # from the receipt's IncreaseLiquidity


# --- defect 5: pending writes reconciled by positions-owned ----------------------------


async def test_pending_without_hash_is_reconciled_with_oriented_amounts(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode, gateway.pending_polls = "pending_no_hash", 2
    gateway.approve_all()
    outcome = await make_env(client, clock, reconcile_interval_s=10.0).execute(request())
    sim = outcome.simulation
    # positions-owned says base = WETH: its amounts land on the right tokens.
    assert sim["initial_value_usd"] == pytest.approx(500.0, rel=1e-3)
    assert gateway.count("open") == 1
    assert sim["open_reconciled"] is True and sim["close_method"] == "close"
    assert clock.slept.count(10.0) == 2  # two reconciliation checks saw nothing yet
    assert 100 < sim["token0_added"] < 500 and 0 < sim["token1_added"] < 0.2
    # Its mint was found on chain: exact amounts, and its gas is the episode's too.
    (opened,) = [t for t in sim["transaction_details"] if t["kind"] == "open"]
    assert opened["reconciled"] is True and opened["source"] == "receipt"
    assert sim["gas_paid_native"] == pytest.approx(2 * gateway.gas_fee)


async def test_open_that_never_appears_fails_without_resending(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode = "lost"
    with pytest.raises(LiveExecutionError, match="not re-sent"):
        await make_env(client, clock, reconcile_checks=3).execute(request())
    assert gateway.count("open") == 1
    assert gateway.count("close") == 0


# --- defect 6: the close fallback ends in a true statement -----------------------------


async def test_close_failure_falls_back_to_remove_which_collects_everything(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.fail_close = True
    gateway.approve_all()
    outcome = await make_env(client, clock).execute(request())
    sim = outcome.simulation
    assert (gateway.count("close"), gateway.count("remove")) == (1, 1)
    remove = next(r for r in gateway.requests if r.op == "remove")
    assert remove.body is not None and remove.body["percentageToRemove"] == 100.0
    # remove-liquidity collected everything: no collect-fees that would answer "No fees".
    assert gateway.count("collect_fees") == 0
    assert sim["close_method"] == "remove+collect"
    assert [t["kind"] for t in sim["transaction_details"]][-2:] == ["open", "remove"]
    assert sim["token0_fees"] == pytest.approx(12 * gateway.fee_per_sample[0], rel=1e-6)
    assert sim["initial_value_usd"] == pytest.approx(sim["lp_value_end_usd"], rel=1e-6)


async def test_owed_fees_left_after_remove_are_collected(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.fail_close = True
    gateway.approve_all()
    env = make_env(client, clock)
    real_remove = gateway._h_remove

    def remove_then_accrue(args: dict[str, Any]) -> Any:
        answer = real_remove(args)
        for p in gateway.positions.values():
            p.owed = [1.0, 0.001]  # credited after the remove, e.g. by a poke
        return answer

    gateway._h_remove = remove_then_accrue  # type: ignore[method-assign]
    outcome = await env.execute(request())
    assert gateway.count("collect_fees") == 1
    assert outcome.simulation["close_method"] == "remove+collect"


async def test_a_close_that_went_through_is_reconciled_not_repeated(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.close_pending_no_hash = True
    outcome = await make_env(client, clock).execute(request())
    assert outcome.simulation["close_method"] == "close_reconciled"
    assert (gateway.count("close"), gateway.count("remove")) == (1, 0)


async def test_failed_close_and_fallback_state_what_is_still_held(
    gateway: FakeGatewayServer,
    client: GatewayClient,
    clock: FakeClock,
    captured_logs: CapturedLogs,
) -> None:
    gateway.fail_close = gateway.fail_remove = True
    gateway.approve_all()
    with pytest.raises(LiveExecutionError, match=r"still holds [\d.]+ token0") as info:
        await make_env(client, clock, reconcile_checks=2).execute(request())
    (still_open,) = gateway.open_positions()
    assert f"position {still_open.address} still holds" in str(info.value)
    assert [e["position"] for e in captured_logs.events("live_position_may_be_open")] == [
        still_open.address
    ]


# --- defect 7: mined is not succeeded --------------------------------------------------


async def test_a_mined_but_reverted_open_is_never_recorded_as_confirmed(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode, gateway.pending_polls = "old_pending_reverted", 1  # poll: txStatus 1
    gateway.approve_all()
    with pytest.raises(TransactionReverted, match="reverted"):
        await make_env(client, clock).execute(request())
    assert gateway.count("open") == 1 and gateway.count("close") == 0


async def test_a_reverted_open_without_hash_is_not_retried(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode = "reverted"  # v2.13: 400 "Transaction failed…", no hash
    gateway.approve_all()
    with pytest.raises(GatewayBadRequest, match="Transaction failed"):
        await make_env(client, clock).execute(request())
    assert gateway.count("open") == 1 and gateway.count("close") == 0


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
    writes = {"open", "close", "remove", "collect_fees", "approve"}
    assert not any(r.op in writes for r in gateway.requests)


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


async def test_a_range_centred_on_a_stale_price_is_moved_to_the_live_price(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    # The intel snapshot says $3,300 while the pool trades near $2,970: the agent's range
    # around $3,300 would sit beside the market and earn nothing.
    gateway.approve_all()
    centre = usd_price_to_tick(POOL, 3300.0) // 10 * 10
    stale = request(
        tick_lower=centre - 300,
        tick_upper=centre + 300,
        market=MarketInputs(price_usd=3300.0, eth_price_usd=3300.0),
    )
    outcome = await make_env(client, clock).execute(stale)
    sim = outcome.simulation
    assert sim["range_shift_ticks"] != 0 and sim["range_shift_ticks"] % POOL.tick_spacing == 0
    assert sim["tick_upper"] - sim["tick_lower"] == stale.tick_upper - stale.tick_lower
    assert sim["tick_lower"] <= TICK < sim["tick_upper"]
    assert outcome.time_in_range_pct == 100.0 and outcome.fees_usd > 0


async def test_a_failed_open_after_approvals_keeps_the_gas_they_cost(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode = "reverted"  # the approvals are mined, the open is not
    with pytest.raises(GatewayBadRequest) as failed:
        await make_env(client, clock).execute(request())
    spent = sent_before(failed.value)
    assert [t["kind"] for t in spent] == ["approve", "approve"]
    assert sum(t["gas_native"] for t in spent) == pytest.approx(2 * gateway.gas_fee)
    assert all(t["hash"] in gateway.txs for t in spent)


async def test_nothing_is_attached_when_nothing_was_sent(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    gateway.open_mode = "reverted"
    gateway.approve_all()  # no approval needed: the open is the first write, and it reverts
    with pytest.raises(GatewayBadRequest) as failed:
        await make_env(client, clock).execute(request())
    assert sent_before(failed.value) == []
