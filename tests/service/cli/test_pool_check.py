"""``clmmd validate-pool``: one line per check, exit codes 0/1/2, offline checks in mock mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.env.base import KNOWN_POOLS
from clmmd.env.gateway import GatewayClient
from clmmd.service.cli import pool_check
from clmmd.service.cli.pool_check import validate_pool_command

USDC_WETH = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


def _proposal(tmp_path: Path, **override: Any) -> Path:
    body = {
        "run_id": "run_1",
        "episode_id": "ep_1",
        "proposed": True,
        "pool_address": USDC_WETH.address,
        "pair": "WETH-USDC",
        "chain": "ethereum",
        "network": "mainnet",
        "fee_pips": 500,
        **override,
    }
    path = tmp_path / "proposal.json"
    path.write_bytes(orjson.dumps(body))
    return path


class _Settings:
    gateway_url = "http://127.0.0.1:9"


async def test_command_prints_a_line_per_check_and_exits_0(
    tmp_path: Path, client: GatewayClient
) -> None:
    lines: list[str] = []
    code = await validate_pool_command(
        _proposal(tmp_path), "run_1", "ep_1", "real", _Settings(), out=lines.append, client=client
    )
    assert code == 0
    assert [line.split()[1].rstrip(":") for line in lines] == [
        "address",
        "chain",
        "network",
        "pool",
        "pair",
        "fee_tier",
    ]
    assert all(line.startswith("ok") for line in lines)


async def test_command_exits_1_naming_the_failed_check(
    tmp_path: Path, client: GatewayClient
) -> None:
    lines: list[str] = []
    code = await validate_pool_command(
        _proposal(tmp_path, fee_pips=3000),
        "run_1",
        "ep_1",
        "real",
        _Settings(),
        out=lines.append,
        client=client,
    )
    assert code == 1
    assert lines[-1].startswith("FAIL fee_tier")


@pytest.mark.parametrize(
    ("args", "write"),
    [
        (("run_X", "ep_1", "real"), True),
        (("run_1", "ep_1", "live"), True),
        (("run_1", "ep_1", "real"), False),
    ],
)
async def test_command_exits_2_on_bad_input(
    tmp_path: Path, args: tuple[str, str, str], write: bool
) -> None:
    path = _proposal(tmp_path) if write else tmp_path / "missing.json"
    lines: list[str] = []
    code = await validate_pool_command(path, *args, _Settings(), out=lines.append)
    assert code == 2
    assert lines[0].startswith("bad input")


async def test_command_in_mock_mode_checks_offline_only_and_builds_no_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_client(*_: object) -> None:
        raise AssertionError("mock mode must not build a Gateway client")

    monkeypatch.setattr(pool_check, "client_from_settings", no_client)
    lines: list[str] = []
    code = await validate_pool_command(
        _proposal(tmp_path, pool_address=USDC_WETH.address.lower()),
        "run_1",
        "ep_1",
        "mock",
        _Settings(),
        out=lines.append,
    )
    assert code == 0
    assert lines[0] == f"ok   address: {USDC_WETH.address}"
    assert "skip gateway checks" in lines[-1]
    bad = await validate_pool_command(
        _proposal(tmp_path, network="moon"), "run_1", "ep_1", "mock", _Settings(), out=lines.append
    )
    assert bad == 1 and lines[-1].startswith("FAIL network")
