"""CLI commands over real parts: registry, refresh against the fake Dune server, status, trigger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from clmmd.service.cli.main import main
from tests.fakes.dune_server import FakeDuneServer, dune_server_thread

KEY = "fake-dune-key-for-cli-tests-0001"


@pytest.fixture
def dune() -> Iterator[FakeDuneServer]:
    """A fake Dune server on its own event loop thread (the CLI runs its own loop)."""
    with dune_server_thread(KEY) as (server, _loop):
        yield server


@pytest.fixture
def dune_env(
    dune: FakeDuneServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeDuneServer:
    monkeypatch.setenv("INTEL_DATA_SOURCE", "dune")
    monkeypatch.setenv("DUNE_API_KEY", KEY)
    monkeypatch.setenv("DUNE_API_BASE_URL", dune.base_url)
    monkeypatch.setenv("DUNE_POLL_INTERVAL_S", "0.01")
    return dune


def test_registry_prints_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry"]) == 0
    out = capsys.readouterr().out
    for name in ("gas_regime", "pool_health_score", "toxic_flow", "il_tracker"):
        assert name in out
    assert "25 defined, 10 enabled, 13 pool-scoped" in out


def test_registry_honours_disable_override(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_DISABLE_QUERIES", "mev_risk")
    assert main(["registry"]) == 0
    assert "25 defined, 9 enabled" in capsys.readouterr().out


def test_unknown_query_override_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_ENABLE_QUERIES", "no_such_query")
    assert main(["registry"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no_such_query" in err and len(err.splitlines()) == 1


def test_refresh_once_against_fake_dune_then_status(
    dune_env: FakeDuneServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["refresh", "--once", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "refreshed 10, failed 0" in out
    # Every request carried the key header; the key appears in no output.
    assert dune_env.requests and KEY not in out
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert status.count(" fresh ") == 10
    # Nothing is due right after: a second --once refreshes nothing and still succeeds.
    assert main(["refresh", "--once"]) == 0
    assert "refreshed 0, failed 0" in capsys.readouterr().out


def test_refresh_once_with_bad_key_fails_and_status_shows_error(
    dune_env: FakeDuneServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUNE_API_KEY", "wrong-key-000000000000")
    assert main(["refresh", "--once"]) == 1
    out = capsys.readouterr().out
    assert "refreshed 0, failed 10" in out
    assert "401" in out
    assert main(["status"]) == 0
    assert "401" in capsys.readouterr().out


def test_trigger_commands_append_lines(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
    assert main(["trigger", "refresh", "--reason", "out_of_range", "--pool", pool]) == 0
    assert main(["trigger", "episodes", "--count", "3"]) == 0
    lines = [orjson.loads(x) for x in (data_dir / "dune_triggers.jsonl").read_bytes().splitlines()]
    assert [x["type"] for x in lines] == ["refresh", "episodes"]
    assert lines[0]["pool_address"].lower() == pool.lower()
    assert lines[0]["priorities"] == ["P0", "P1"]
    assert lines[1]["count"] == 3


def test_trigger_bad_pool_exits_2(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trigger", "refresh", "--reason", "x", "--pool", "0xnothex"]) == 2
    err = capsys.readouterr().err
    assert "pool_address" in err and "0xnothex" in err
    assert not (data_dir / "dune_triggers.jsonl").exists()


def test_dune_source_without_key_is_a_config_error(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTEL_DATA_SOURCE", "dune")
    assert main(["refresh", "--once"]) == 2
    assert "DUNE_API_KEY" in capsys.readouterr().err


def test_evaluate_and_export_commands(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    assert main(["evaluate", "--episodes", "20", "--seed", "3", "--train", "20"]) == 0
    out = capsys.readouterr().out
    assert "trained on 20 mock episodes" in out
    assert "learned - baseline" in out and "reward" in out
    assert (data_dir / "agent" / "state.json").exists()
    out_file = data_dir / "export.jsonl"
    assert main(["export", "--window", "1h", "--out", str(out_file)]) == 0
    assert "exported 20 episodes" in capsys.readouterr().out
    lines = [orjson.loads(x) for x in out_file.read_bytes().splitlines()]
    assert sum(len(w["episodes"]) for w in lines) == 20


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["export", "--window", "7q", "--out", "x.jsonl"], "7q"),
        (["export", "--window", "1h", "--run", "run_nope", "--out", "x.jsonl"], "run_nope"),
        (["evaluate", "--episodes", "5", "--seed", "1", "--baseline-pct", "-3"], "-3"),
    ],
)
def test_evaluate_export_bad_input_exit_2(
    argv: list[str], named: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code  # argparse rejects before dispatch
    assert code == 2
    assert named in capsys.readouterr().err


def test_trigger_says_what_was_appended_and_where(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
    assert main(["trigger", "refresh", "--reason", "out_of_range", "--pool", pool]) == 0
    out = capsys.readouterr().out
    (record,) = [orjson.loads(x) for x in (data_dir / "dune_triggers.jsonl").read_bytes().split()]
    assert f"appended trigger {record['id']}: refresh of pool {pool}" in out
    assert "priorities P0,P1" in out and "'out_of_range'" in out
    assert str(data_dir / "dune_triggers.jsonl") in out
    assert main(["trigger", "episodes", "--count", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 episode(s)" in out and str(data_dir / "dune_triggers.jsonl") in out


def test_clean_dry_run_prints_only_its_text(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    for seed in ("1", "2"):
        assert main(["campaign", "--episodes", "1", "--seed", seed]) == 0
    capsys.readouterr()
    assert main(["clean", "--keep", "1", "--dry-run"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("would remove run_")  # no JSON log line before the text
    assert not [x for x in lines if x.startswith("{")]
    assert lines[-1] == "would remove 1 run(s), kept 1 newest + 0 protected"
    # Its info-level log lines stay off the terminal too (stderr shows warnings and up).
    assert captured.err == ""


def test_status_columns_stay_aligned_for_long_keys(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = [x for x in lines if x.split()[0] == "key" or ":" in x.split()[0] or "_" in x[:20]]
    table = [x for x in table if not x.startswith(("triggers:", "daemon:"))]
    longest = max(len(x.split()[0]) for x in table)
    assert longest > 62  # pool-scoped keys with a 24h window are 67 characters
    columns = {x.index(x.split()[1], len(x.split()[0])) for x in table}
    assert len(columns) == 1, table  # the quality column starts at one offset on every line
