"""The Dune path out of the box: with only DUNE_API_KEY set, `refresh --once` runs the shipped
SQL through /sql/execute for every enabled key, a campaign sees them fresh as of Dune's
execution end, the daily credit budget skips low priorities, and a wrong result shape is an
envelope error naming the column."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.base.clock import parse_utc
from clmmd.service.cli.main import main
from tests.fakes.dune_server import FakeDuneServer, dune_server_thread

KEY = "fake-dune-key-for-sql-tests-0002"
ENABLED_KEYS = 10


@pytest.fixture
def dune(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDuneServer]:
    with dune_server_thread(KEY) as (server, _loop):
        # Only the key and where Dune is: no query ids, no queries file.
        monkeypatch.setenv("INTEL_DATA_SOURCE", "dune")
        monkeypatch.setenv("DUNE_API_KEY", KEY)
        monkeypatch.setenv("DUNE_API_BASE_URL", server.base_url)
        monkeypatch.setenv("DUNE_POLL_INTERVAL_S", "0.01")
        monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
        yield server


def test_refresh_once_fills_every_enabled_key_through_sql_execute_and_a_campaign_sees_them(
    dune: FakeDuneServer, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["refresh", "--once", "--workers", "3"]) == 0
    out = capsys.readouterr().out
    assert f"refreshed {ENABLED_KEYS}, failed 0" in out
    assert {r.endpoint for r in dune.requests} == {"sql", "status", "results"}
    assert len(dune.requests_to("sql")) == ENABLED_KEYS
    assert dune.sql_rejections == []  # every SQL parsed as Trino with all parameters bound
    assert "dune credits" in out and "executions" in out

    assert main(["campaign", "--episodes", "1", "--seed", "5"]) == 0
    capsys.readouterr()
    (metadata_file,) = data_dir.rglob("metadata.json")
    snapshot = orjson.loads(metadata_file.read_bytes())["extra"]["intel_snapshot"]
    assert len(snapshot) == ENABLED_KEYS
    assert {entry["quality"] for entry in snapshot.values()} == {"fresh"}
    ended = {_instant(e.ended_at) for e in dune.executions.values() if e.ended_at}
    asofs = {parse_utc(entry["asof"]) for entry in snapshot.values()}
    assert asofs <= ended, (sorted(asofs)[:2], sorted(ended)[:2])


def test_budget_runs_p0_and_p1_and_skips_p2_with_the_reason(
    dune: FakeDuneServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Estimates: 10 credits per execution + 20 KB of results at the free plan's 20/MB = 10.4.
    # P0 is 3 keys, P1 4 (enabled), P2 3: 7 x 10.4 = 72.8 fits in 75, one more does not.
    monkeypatch.setenv("DUNE_CREDIT_BUDGET_PER_DAY", "75")
    assert main(["refresh", "--once"]) == 0
    out = capsys.readouterr().out
    assert "refreshed 7, failed 0, skipped 0, over budget 3" in out
    skipped = [line for line in out.splitlines() if line.startswith("skipped_budget")]
    assert sorted(line.split()[1].split(":")[0] for line in skipped) == [
        "jit_monitor",
        "mev_risk",
        "toxic_flow",
    ]
    assert all("credit budget" in line for line in skipped)
    assert len(dune.requests_to("sql")) == 7
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert "budget 75/day" in status


def test_a_missing_column_is_an_envelope_error_naming_it(
    dune: FakeDuneServer, capsys: pytest.CaptureFixture[str]
) -> None:
    normal = dune.sql_rows

    def without_toxic_share(sql: str) -> list[dict[str, Any]]:
        rows = normal(sql)
        if "clmmd query: toxic_flow" in sql:
            return [{k: v for k, v in row.items() if k != "toxic_share"} for row in rows]
        return rows

    dune.sql_rows = without_toxic_share
    assert main(["refresh", "--once"]) == 0  # the other keys still refresh
    out = capsys.readouterr().out
    assert f"refreshed {ENABLED_KEYS - 1}, failed 1" in out
    assert "toxic_flow: row 0: column 'toxic_share': missing" in out
    assert main(["status"]) == 0
    assert "column 'toxic_share': missing" in capsys.readouterr().out


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def test_the_daemon_stays_up_through_a_missing_column(
    dune: FakeDuneServer, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the daemon: a burst (`run --once`) with an episodes trigger refreshes every key,
    records the bad one's error in its envelope, still runs the episode and exits 0."""
    normal = dune.sql_rows

    def without_toxic_share(sql: str) -> list[dict[str, Any]]:
        rows = normal(sql)
        if "clmmd query: toxic_flow" in sql:
            return [{k: v for k, v in row.items() if k != "toxic_share"} for row in rows]
        return rows

    dune.sql_rows = without_toxic_share
    assert main(["trigger", "episodes", "--count", "1"]) == 0
    assert main(["run", "--once", "--workers", "3"]) == 0
    capsys.readouterr()
    (metadata_file,) = data_dir.rglob("metadata.json")
    snapshot = orjson.loads(metadata_file.read_bytes())["extra"]["intel_snapshot"]
    bad = [key for key in snapshot if key.startswith("toxic_flow")]
    assert bad and all(snapshot[key]["quality"] == "missing" for key in bad)
    assert sum(entry["quality"] == "fresh" for entry in snapshot.values()) == ENABLED_KEYS - 1
    assert main(["status"]) == 0
    assert "column 'toxic_share': missing" in capsys.readouterr().out
