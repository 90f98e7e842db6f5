"""Real mode end to end: a campaign through RealClmmEnv against the fake Gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.validate import validate_run
from clmmd.env.real import real_env_from_settings
from clmmd.service.config import load_settings
from clmmd.service.runs.campaign import run_campaign
from clmmd.service.runs.warmup import warm_mock_intel
from clmmd.service.wiring import open_intel
from tests.fakes.gateway_server import FakeGatewayServer, FakePool

WALLET = "0x1111111111111111111111111111111111111111"


async def real_campaign(
    data_dir: Path, gateway: FakeGatewayServer, clock: FakeClock, episodes: int, **kw: Any
) -> RunLayout:
    settings = load_settings(
        data_dir=data_dir,
        seed=4,
        durable_writes=False,
        hb_env="real",
        gateway_url=gateway.base_url,
        gateway_wallet_address=WALLET,
        max_position_usd=5_000.0,
        position_size_usd=2_000.0,
        horizon_hours=1.0,
        episode_workers=2,
        **kw,
    )
    assert settings.exec_mode == "real"
    stack = open_intel(settings, clock)
    env = real_env_from_settings(settings, clock)
    try:
        await warm_mock_intel(stack.cache, stack.registry, clock, list(settings.pools), 4)
        report = await run_campaign(
            settings, env=env, intel=stack.intel, episodes=episodes, clock=clock
        )
    finally:
        await env.client.close()
        stack.close()
    assert report.complete
    return RunLayout(data_dir, report.run_id)


@pytest.fixture
async def gateway() -> Any:
    async with FakeGatewayServer() as server:
        server.add_pool(FakePool.usdc_weth(196_250))
        yield server


async def test_five_live_episodes_pass_the_validator(
    data_dir: Path, gateway: FakeGatewayServer, clock: FakeClock
) -> None:
    layout = await real_campaign(data_dir, gateway, clock, 5, live_risk_ack="yes")
    assert validate_run(layout) == []
    assert gateway.count("open") == gateway.count("close") == 5
    assert gateway.open_positions() == []
    for folder in layout.episode_dirs():
        result = orjson.loads((folder / "result.json").read_bytes())
        metadata = orjson.loads((folder / "metadata.json").read_bytes())
        assert result["status"] == "success", result
        assert result["simulation"]["source"] == "live"
        assert result["simulation"]["position_id"]
        assert len(result["simulation"]["transactions"]) >= 2
        assert result["gas_cost_usd"] > 0
        assert metadata["exec_mode"] == "real"
        assert metadata["gateway_health"] == "ok"
        assert metadata["gateway_latency_ms"] is not None


async def test_without_live_risk_ack_nothing_is_written_to_gateway(
    data_dir: Path, gateway: FakeGatewayServer, clock: FakeClock
) -> None:
    layout = await real_campaign(data_dir, gateway, clock, 3)
    assert validate_run(layout) == []
    writes = [r for r in gateway.requests if r.op in ("open", "close", "remove", "collect_fees")]
    assert writes == []
    for folder in layout.episode_dirs():
        result = orjson.loads((folder / "result.json").read_bytes())
        assert result["status"] == "skipped"
        assert "I_UNDERSTAND_LIVE_RISK" in result["reason"]


async def test_a_failed_open_records_the_approval_gas_in_failure_json(
    data_dir: Path, gateway: FakeGatewayServer, clock: FakeClock
) -> None:
    gateway.open_mode = "reverted"  # approvals mined, then the open reverts (no hash in v2.13)
    layout = await real_campaign(data_dir, gateway, clock, 1, live_risk_ack="yes")
    assert validate_run(layout) == []
    [folder] = layout.episode_dirs()
    failure = orjson.loads((folder / "failure.json").read_bytes())
    assert failure["stage"] == "execute"
    assert [t["kind"] for t in failure["transactions"]] == ["approve", "approve"]
    assert failure["gas_paid_native"] == pytest.approx(2 * gateway.gas_fee)
