"""CLMMD_MARKET: campaigns, the report and the evaluation on a replayed market."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clmmd.artifacts.layout import list_runs
from clmmd.artifacts.validate import validate_run
from clmmd.env.base import KNOWN_POOLS
from clmmd.env.history_io import parquet_bytes
from clmmd.env.mock import MockClmmEnv
from clmmd.env.replay_env import ReplayClmmEnv
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history
from clmmd.service.cli.main import main
from clmmd.service.config import ConfigError, load_settings
from clmmd.service.market import mock_env

POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "usdc-weth.parquet"
    history = synthetic_history(POOL, SyntheticMarket(swaps=20_000, seconds_per_swap=30, seed=2))
    path.write_bytes(parquet_bytes(history, POOL))
    return path


def test_the_market_setting_picks_the_environment(
    data_dir: Path, history_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(mock_env(load_settings()), MockClmmEnv)
    monkeypatch.setenv("CLMMD_MARKET", "replay")
    with pytest.raises(ConfigError, match=r"holds no history of 0x88e6.*history fetch"):
        mock_env(load_settings())
    monkeypatch.setenv("CLMMD_REPLAY_HISTORY", str(history_file.with_name("nope.parquet")))
    with pytest.raises(ConfigError, match=r"CLMMD_REPLAY_HISTORY=.*nope\.parquet.*no such file"):
        mock_env(load_settings())
    monkeypatch.setenv("CLMMD_REPLAY_HISTORY", str(history_file))
    assert isinstance(mock_env(load_settings()), ReplayClmmEnv)


def test_campaign_report_and_evaluation_on_the_replayed_market(
    data_dir: Path,
    history_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLMMD_MARKET", "replay")
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    assert main(["history", "import", str(history_file)]) == 0
    assert main(["campaign", "--episodes", "6", "--seed", "5"]) == 0
    (run,) = list_runs(data_dir)
    assert validate_run(run) == []
    results = [json.loads((d / "result.json").read_text()) for d in run.episode_dirs()]
    assert len(results) == 6
    for result in results:
        assert result["status"] == "success", result
        sim = result["simulation"]
        assert sim["market"] == "replay" and sim["swaps"] > 0
        assert result["pnl_usd"] == pytest.approx(
            result["hodl_return_usd"]
            - result["il_usd"]
            + result["fees_usd"]
            - result["gas_cost_usd"]
        )
    assert len({r["simulation"]["window_start"] for r in results}) == 6
    assert main(["report", "latest"]) == 0
    assert (run.run_dir / "report" / "report.html").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--episodes", "4", "--seed", "5"]) == 0
    assert "learned - baseline" in capsys.readouterr().out
