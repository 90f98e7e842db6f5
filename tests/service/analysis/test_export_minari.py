"""Minari export: minari.load_dataset loads it; episodes, actions and returns are the
artifacts'; the observation is the environment's own. Needs the rl extra (make test-extras)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

minari = pytest.importorskip("minari", reason="the rl extra is not installed (make test-extras)")

from clmmd.agent.policy import DEFAULT_WIDTHS  # noqa: E402
from clmmd.artifacts.base.clock import FakeClock  # noqa: E402
from clmmd.artifacts.layout import list_runs  # noqa: E402
from clmmd.env.base import MarketInputs  # noqa: E402
from clmmd.env.mock import MockClmmEnv  # noqa: E402
from clmmd.service.analysis.export_minari import export_minari  # noqa: E402
from clmmd.service.cli.main import main  # noqa: E402
from clmmd.service.config import load_settings  # noqa: E402
from clmmd.service.rl.lp_env import UniswapV3LPEnv  # noqa: E402
from clmmd.service.rl.market import SyntheticMarket  # noqa: E402
from clmmd.service.runs.campaign import run_campaign  # noqa: E402
from clmmd.service.runs.warmup import warm_mock_intel  # noqa: E402
from clmmd.service.wiring import open_intel  # noqa: E402
from tests.service.analysis.test_export import RUN_A, at, write_episode  # noqa: E402

pytestmark = pytest.mark.extras
DATASET = "clmmd/test-artifacts-v0"


async def _campaign(data_dir: Path, episodes: int, seed: int) -> None:
    settings = load_settings(data_dir=data_dir, seed=seed, durable_writes=False)
    clock = FakeClock(at("2026-11-23T15:00:00"))
    stack = open_intel(settings, clock)
    try:
        await warm_mock_intel(stack.cache, stack.registry, clock, list(settings.pools), seed)
        await run_campaign(
            settings, env=MockClmmEnv(), intel=stack.intel, episodes=episodes, clock=clock
        )
    finally:
        stack.close()


def _load(root: Path, monkeypatch: pytest.MonkeyPatch, dataset_id: str = DATASET) -> Any:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return minari.load_dataset(dataset_id)


def _artifact(data_dir: Path, ref: str, name: str) -> dict[str, Any]:
    run_id, episode_id = ref.split("/")
    path = data_dir / "runs" / run_id / "episodes" / episode_id / name
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return document


async def test_load_dataset_gives_every_episode_with_the_artifacts_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    await _campaign(data_dir, 9, seed=3)
    report = export_minari(data_dir, None, dataset_id=DATASET, root=tmp_path / "minari")
    assert report.episodes == 9 and report.not_exported == []

    dataset = _load(tmp_path / "minari", monkeypatch)
    assert dataset.total_episodes == 9 and dataset.total_steps == 9
    refs = dataset.storage.metadata["clmmd_episodes"]
    assert len(refs) == 9 and len(set(refs)) == 9
    for episode, ref in zip(dataset.iterate_episodes(), refs, strict=True):
        reward = _artifact(data_dir, ref, "reward.json")["total"]
        proposal = _artifact(data_dir, ref, "proposal.json")
        assert float(episode.rewards.sum()) == pytest.approx(reward, abs=1e-12)
        assert int(episode.actions[0]) == 1 + DEFAULT_WIDTHS.index(
            proposal["action"]["width_ticks"]
        )
        assert episode.terminations.tolist() == [True]
        assert episode.truncations.tolist() == [False]
        assert episode.observations.shape == (2, 20)
        for observation in episode.observations:
            assert dataset.observation_space.contains(observation)
    recovered = dataset.recover_environment()
    assert recovered.spec.id == "clmmd/UniswapV3LP-v0"
    assert recovered.unwrapped.decisions == 1


async def test_an_exported_episode_is_the_environment_episode_on_the_same_market(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuild one artifact episode's market from its seed and inputs: the one-decision
    environment gives the exported reward and final observation."""
    data_dir = tmp_path / "data"
    await _campaign(data_dir, 3, seed=5)
    export_minari(data_dir, None, dataset_id=DATASET, root=tmp_path / "minari")
    dataset = _load(tmp_path / "minari", monkeypatch)
    episode = next(iter(dataset.iterate_episodes()))
    ref = dataset.storage.metadata["clmmd_episodes"][0]
    result = _artifact(data_dir, ref, "result.json")
    metadata = _artifact(data_dir, ref, "metadata.json")
    inputs = MarketInputs(**result["simulation"]["inputs"])
    env = UniswapV3LPEnv(horizon_hours=24, decision_minutes=24 * 60)
    flow_clean = 0.1  # the regime key says clean (< 0.25); its exact share is not recorded
    market = SyntheticMarket().market_for(
        env.pool,
        inputs,
        metadata["seed"],
        24.0,
        toxic_share=flow_clean,
    )
    assert metadata["regime_key"].endswith("flow=clean")
    env.start_episode(market)
    first = env.observe()
    observation, reward, terminated, _, _ = env.step(np.int64(episode.actions[0]))
    assert terminated
    assert reward == pytest.approx(float(episode.rewards[0]), abs=1e-6)
    np.testing.assert_allclose(episode.observations[0], first, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(episode.observations[1], observation, rtol=1e-5, atol=1e-5)


async def test_failed_and_skipped_episodes_are_left_out_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    await _campaign(data_dir, 1, seed=2)
    when = at("2026-11-23T15:10:00")
    write_episode(data_dir, RUN_A, 1, when)
    write_episode(data_dir, RUN_A, 2, when, status="failed")
    write_episode(data_dir, RUN_A, 3, when, status="skipped")
    # the fabricated success lacks volatility and liquidity inputs: also left out, named
    report = export_minari(data_dir, None, dataset_id=DATASET, root=tmp_path / "minari")
    reasons = {n.episode_id: n.reason for n in report.not_exported}
    assert reasons.keys() == {"ep_000002", "ep_000003", "ep_000001"}
    assert "status failed" in reasons["ep_000002"] and "status skipped" in reasons["ep_000003"]
    assert "volatility_daily is missing" in reasons["ep_000001"]
    assert report.episodes == 1 and _load(tmp_path / "minari", monkeypatch).total_episodes == 1


def test_nothing_to_export_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_episode(data_dir, RUN_A, 1, at("2026-11-23T15:10:00"), status="failed")
    with pytest.raises(ValueError, match="no executed episode"):
        export_minari(data_dir, None, dataset_id=DATASET, root=tmp_path / "minari")
    assert not (tmp_path / "minari" / DATASET).exists()


async def test_cli_writes_once_and_refuses_an_existing_or_malformed_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    await _campaign(data_dir, 2, seed=1)
    root = tmp_path / "minari"
    argv = ["--data-dir", str(data_dir), "export", "--format", "minari", "--out", str(root)]
    assert main([*argv, "--dataset-id", DATASET]) == 0
    assert "exported 2 episodes" in capsys.readouterr().out
    before = sorted(p.name for p in (root / DATASET / "data").iterdir())
    assert main([*argv, "--dataset-id", DATASET]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in (root / DATASET / "data").iterdir()) == before
    assert main([*argv, "--dataset-id", "not a valid id"]) == 2
    assert "Malformed dataset ID" in capsys.readouterr().err
    assert main([*argv, "--dataset-id", DATASET.replace("v0", "v1"), "--run", "run_nope"]) == 2
    assert "run_nope" in capsys.readouterr().err
    assert _load(root, monkeypatch).total_episodes == 2
    assert len(list_runs(data_dir)) == 1


def test_jsonl_export_still_needs_window_and_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", "--out", "x.jsonl"])
    assert exc.value.code == 2
    assert "--window" in capsys.readouterr().err
