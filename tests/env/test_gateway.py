"""GatewayClient against the fake Gateway: route families, retries, limits, parsing, TLS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.artifacts.base.clock import FakeClock
from clmmd.env.gateway import GatewayClient, Venue, WriteResult, build_ssl_context, parse_amount
from clmmd.env.gateway_errors import (
    GatewayNotFound,
    GatewayRateLimited,
    GatewayResponseError,
    GatewayRouteMissing,
    GatewayUnreachable,
)
from tests.conftest import CapturedLogs
from tests.fakes.gateway_server import FakeGatewayServer, FakePool

POOL = FakePool.usdc_weth().address
WALLET = "0x1111111111111111111111111111111111111111"


@pytest.fixture(params=["unified", "legacy"])
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[FakeGatewayServer]:
    async with FakeGatewayServer(family=request.param) as server:
        server.add_pool(FakePool.usdc_weth())
        yield server


async def test_route_family_is_detected_once_and_logged(
    gateway: FakeGatewayServer, client: GatewayClient, captured_logs: CapturedLogs
) -> None:
    info = await client.pool_info(Venue(), POOL)
    await client.pool_info(Venue(), POOL)
    await client.positions_owned(Venue(), WALLET, POOL)
    assert client.route_family == gateway.family
    assert info.base_is_token0 is True and info.active_tick == 196_250  # v2.13: base = token0
    assert [e["family"] for e in captured_logs.events("gateway_routes")] == [gateway.family]
    unified_tries = [r for r in gateway.requests if r.path.startswith("/trading/clmm/")]
    if gateway.family == "legacy":
        assert len(unified_tries) == 1 and unified_tries[0].op == "missing"
        assert all(
            r.query.get("network") == "mainnet" and "connector" not in r.query
            for r in gateway.requests[1:]
        )
    else:
        assert all(
            r.query["connector"] == "uniswap" and r.query["chainNetwork"] == "ethereum-mainnet"
            for r in unified_tries
        )


async def test_no_clmm_routes_at_all_is_a_route_missing_error(clock: FakeClock) -> None:
    async with (
        FakeGatewayServer(family="legacy") as server,
        GatewayClient(clock, server.base_url) as c,
    ):
        with pytest.raises(GatewayRouteMissing):
            await c.pool_info(Venue(connector="nosuchdex"), POOL)
        assert c.route_family is None


async def test_unknown_pool_keeps_gateways_message(clock: FakeClock) -> None:
    async with FakeGatewayServer() as server, GatewayClient(clock, server.base_url) as c:
        with pytest.raises(GatewayNotFound) as info:
            await c.pool_info(Venue(), "0x" + "33" * 20)
    assert info.value.status == 404
    assert "Pool not found: 0x3333" in str(info.value)


async def test_reads_retry_429_honouring_retry_after(
    gateway: FakeGatewayServer, client: GatewayClient, clock: FakeClock
) -> None:
    await client.pool_info(Venue(), POOL)
    gateway.rate_limit_next = 2
    await client.pool_info(Venue(), POOL)
    assert clock.slept == [1.0, 1.0]
    assert gateway.count("pool_info") == 4


async def test_reads_give_up_after_the_attempts(
    gateway: FakeGatewayServer, clock: FakeClock
) -> None:
    async with GatewayClient(clock, gateway.base_url, read_attempts=2) as c:
        await c.pool_info(Venue(), POOL)
        gateway.rate_limit_next = 5
        with pytest.raises(GatewayRateLimited) as info:
            await c.pool_info(Venue(), POOL)
    assert info.value.retry_after_s == 1.0


async def test_writes_are_never_resent(gateway: FakeGatewayServer, client: GatewayClient) -> None:
    await client.pool_info(Venue(), POOL)
    gateway.rate_limit_next = 1
    with pytest.raises(GatewayRateLimited):
        await client.open_position(Venue(), WALLET, POOL, 2000.0, 4000.0, 0.1, 300.0)
    assert gateway.count("open") == 1
    assert gateway.open_positions() == []


async def test_string_amounts_are_parsed(gateway: FakeGatewayServer, client: GatewayClient) -> None:
    # v2.13 sends approve's fee and every allowance as decimal strings.
    await client.pool_info(Venue(), POOL)
    result = await client.approve(Venue(), WALLET, "USDC", "1.5")
    assert result.status == 1 and result.fee_native == pytest.approx(gateway.gas_fee)
    allowed = await client.allowances(Venue(), WALLET, ["USDC", "WETH"])
    assert allowed.raw("USDC", 6) == 1_500_000 and allowed.raw("WETH", 18) == 0
    balances = await client.balances(Venue(), WALLET, ["USDC", "ETH"])
    assert balances.balances["USDC"] == 1e7


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=12, min_value=-1e12, max_value=1e12)
)
def test_parse_amount_reads_numbers_and_decimal_strings_alike(value: Decimal) -> None:
    assert parse_amount(str(value), "x") == float(value)
    assert parse_amount(float(value), "x") == float(value)


@pytest.mark.parametrize("bad", [None, True, "abc", "NaN", [], {}])
def test_parse_amount_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(GatewayResponseError):
        parse_amount(bad, "field")


async def test_the_limiter_paces_requests_on_the_clock(
    gateway: FakeGatewayServer, clock: FakeClock
) -> None:
    assert GatewayClient(clock).__dict__["_limiter"].limit == 100  # Gateway's own limit
    async with GatewayClient(clock, gateway.base_url, requests_per_minute=3) as c:
        for _ in range(4):
            await c.health()
    assert clock.slept == [pytest.approx(60.0)]


async def test_writes_for_one_wallet_wait_for_its_lock(
    gateway: FakeGatewayServer, client: GatewayClient
) -> None:
    gateway.approve_all()
    await client.pool_info(Venue(), POOL)
    assert client.wallet_lock(WALLET.upper().replace("0X", "0x")) is client.wallet_lock(WALLET)
    async with client.wallet_lock(WALLET):
        task = asyncio.create_task(
            client.open_position(Venue(), WALLET, POOL, 0.0003, 0.0004, 300.0, 0.1)
        )
        for _ in range(20):
            await asyncio.sleep(0)
        assert gateway.count("open") == 0
    await task
    assert gateway.count("open") == 1


@pytest.mark.parametrize(
    ("answer", "reverted", "pending"),
    [
        ({"signature": "0x1", "status": 1, "data": {"fee": 0.1}}, False, False),
        # v2.13 copies the receipt's status: 0 with the receipt's data is a revert.
        ({"signature": "0x1", "status": 0, "data": {"fee": 0.1}}, True, False),
        ({"signature": "0x1", "status": 0}, False, True),  # older Gateways: pending
        ({"signature": "0x1", "status": -1}, True, False),
        ({"txHash": "0x1", "fee": "0.1"}, False, False),  # older flat answer
    ],
)
def test_write_answers_tell_reverted_from_pending(
    answer: dict[str, object], reverted: bool, pending: bool
) -> None:
    result = WriteResult.parse(answer)
    assert (result.reverted, result.pending) == (reverted, pending)


async def test_poll_says_mined_not_succeeded(
    gateway: FakeGatewayServer, client: GatewayClient
) -> None:
    # A reverted receipt polls as txStatus 1 in v2.13: wait_confirmed only means "mined".
    gateway.approve_all()
    gateway.open_mode, gateway.pending_polls = "old_pending_reverted", 1
    await client.pool_info(Venue(), POOL)
    result = await client.open_position(Venue(), WALLET, POOL, 0.0003, 0.0004, 300.0, 0.1)
    assert result.pending
    polled = await client.wait_confirmed(Venue(), result.signature, interval_s=0.0)
    assert polled.tx_status == 1
    assert gateway.txs[result.signature].status == 0


async def test_unreachable_gateway(clock: FakeClock) -> None:
    async with GatewayClient(clock, "http://127.0.0.1:9", read_attempts=1) as c:
        with pytest.raises(GatewayUnreachable):
            await c.health()


def test_api_key_never_appears_in_repr(clock: FakeClock) -> None:
    client = GatewayClient(clock, api_key="sekrit-token-123")
    assert "sekrit" not in repr(client) and "api_key=set" in repr(client)


# --- TLS with a client certificate ---


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("neither the cryptography package nor the openssl CLI is available")
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=clmmd test CA",
        cwd=d,
    )
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )
        extra = ["-extfile", "server.ext"] if name == "server" else []
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "1",
            *extra,
            cwd=d,
        )
    return d


@pytest.fixture
async def tls_gateway(pki: Path) -> AsyncIterator[FakeGatewayServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED
    async with FakeGatewayServer(ssl_context=context) as server:
        server.add_pool(FakePool.usdc_weth())
        yield server


async def test_client_certificate_is_presented(
    tls_gateway: FakeGatewayServer, pki: Path, clock: FakeClock
) -> None:
    context = build_ssl_context(
        str(pki / "ca.pem"), str(pki / "client.pem"), str(pki / "client.key")
    )
    assert tls_gateway.base_url.startswith("https://")
    async with GatewayClient(clock, tls_gateway.base_url, ssl_context=context) as c:
        assert await c.health() >= 0
        assert (await c.pool_info(Venue(), POOL)).fee_pct == 0.05


async def test_without_the_client_certificate_the_server_refuses(
    tls_gateway: FakeGatewayServer, pki: Path, clock: FakeClock
) -> None:
    context = build_ssl_context(str(pki / "ca.pem"))
    async with GatewayClient(
        clock, tls_gateway.base_url, ssl_context=context, read_attempts=1
    ) as c:
        with pytest.raises(GatewayUnreachable):
            await c.health()
    assert tls_gateway.count("health") == 0
