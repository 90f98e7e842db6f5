"""Dune as the history store's page source: `clmmd history fetch` against the fake Dune server,
resumable after a failure, within the credit budget, and the backtest reading what it stored."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clmmd.env.base import KNOWN_POOLS
from clmmd.env.history import SwapHistory
from clmmd.env.history_io import parquet_bytes
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history
from clmmd.service.cli.main import main
from tests.fakes.dune_server import FakeDuneServer, Fault, dune_server_thread

KEY = "fake-dune-key-for-history-0001"
POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]
_BOUND = re.compile(r"TIMESTAMP '([^']+)'")


@pytest.fixture(scope="module")
def four_days() -> SwapHistory:
    return synthetic_history(POOL, SyntheticMarket(swaps=4000, seconds_per_swap=80.0, seed=12))


def dune_rows(history: SwapHistory, sql: str) -> list[dict[str, Any]]:
    """What Dune's pool_swaps returns for the SQL's [start, end): the history's rows."""
    start, end = (
        int(datetime.strptime(t, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC).timestamp())
        for t in _BOUND.findall(sql)[:2]
    )
    part = history.between(start, end)
    return [
        {
            "block_time": datetime.fromtimestamp(int(part.block_time[i]), UTC).strftime(
                "%Y-%m-%d %H:%M:%S.000 UTC"
            ),
            "block_number": int(part.block_number[i]),
            "log_index": int(part.log_index[i]),
            "tx_hash": f"0x{i:064x}",
            "amount0": str(part.amount0[i]),
            "amount1": str(part.amount1[i]),
            "sqrt_price_x96": str(part.sqrt_price_x96[i]),
            "liquidity": str(part.liquidity[i]),
            "tick": int(part.tick[i]),
        }
        for i in range(len(part))
    ]


@pytest.fixture
def dune(
    four_days: SwapHistory, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeDuneServer]:
    with dune_server_thread(KEY) as (server, _loop):
        server.sql_rows = lambda sql: dune_rows(four_days, sql)
        monkeypatch.setenv("DUNE_API_KEY", KEY)
        monkeypatch.setenv("DUNE_API_BASE_URL", server.base_url)
        monkeypatch.setenv("DUNE_POLL_INTERVAL_S", "0.01")
        yield server


def day(k: int) -> str:
    return f"2024-05-0{1 + k}"


def test_fetch_resumes_after_a_failure_and_the_backtest_reads_the_store(
    dune: FakeDuneServer,
    four_days: SwapHistory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fetch = ["history", "fetch", "--pool", POOL.address, "--from", day(0)]
    assert main([*fetch, "--to", "2024-05-02T23:59:59Z"]) == 0
    assert "2 day(s) stored, 0 already there" in capsys.readouterr().out
    assert len(dune.requests_to("sql")) == 2
    dune.add_faults("sql", Fault.http(400, "query failed"))  # the next execution is refused
    assert main([*fetch, "--to", "2024-05-04T23:59:59Z"]) == 1
    assert "fetching failed" in capsys.readouterr().err
    assert main([*fetch, "--to", "2024-05-04T23:59:59Z"]) == 0
    assert "2 day(s) stored, 2 already there" in capsys.readouterr().out
    asked = [_BOUND.findall(r.body["sql"])[0] for r in dune.requests_to("sql")]
    assert asked == [f"{day(k)} 00:00:00 UTC" for k in (0, 1, 2, 2, 3)]
    assert dune.sql_rejections == []

    # The store now answers a backtest without asking Dune again, and like the file would.
    file = tmp_path / "four.parquet"
    file.write_bytes(parquet_bytes(four_days, POOL))
    args = ["--from", "2024-05-02T06:00:00Z", "--to", "2024-05-03T06:00:00Z",
            "--width-pct", "2", "--size-usd", "10000"]  # fmt: skip
    assert main(["backtest", "--pool", POOL.address, *args]) == 0
    from_store = json.loads(capsys.readouterr().out)
    assert len(dune.requests_to("sql")) == 5
    assert main(["backtest", "--history", str(file), *args]) == 0
    assert json.loads(capsys.readouterr().out) == from_store
    assert from_store["swaps"] > 0


def test_fetch_stops_when_the_daily_credit_budget_is_spent(
    dune: FakeDuneServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DUNE_CREDIT_BUDGET_PER_DAY", "5")  # the fake charges 3.5 a run
    status = main(["history", "fetch", "--pool", POOL.address, "--from", day(0), "--to", day(3)])
    assert status == 1
    assert "daily Dune credit budget is spent" in capsys.readouterr().err
    assert len(dune.requests_to("sql")) == 2  # 3.5 + (3.5 more) > 5: the third day waits
    assert main(["history", "list"]) == 0
    assert "2 day(s)" in capsys.readouterr().out
