"""Campaigns end to end: artifacts, validator, determinism, recovery, CLI exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.episode_write import EpisodeWrite
from clmmd.artifacts.layout import RunLayout, list_runs
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.artifacts.validate import validate_run
from clmmd.env.mock import MockClmmEnv
from clmmd.service.cli.main import main
from clmmd.service.config import load_settings
from clmmd.service.runs import campaign as campaign_module
from clmmd.service.runs.campaign import CampaignReport, CampaignStop, run_campaign
from clmmd.service.runs.runner import EpisodeRunner
from clmmd.service.runs.warmup import warm_mock_intel
from clmmd.service.runs.writer_processes import WriterProcesses
from clmmd.service.wiring import open_intel

VOLATILE = {"run_id", "episode_id", "timestamp", "timings_ms", "ts"}


def strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


async def campaign(
    data_dir: Path,
    clock: FakeClock,
    episodes: int,
    seed: int = 5,
    warm: bool = True,
    runner_factory: Callable[..., EpisodeRunner] = EpisodeRunner,
    **overrides: Any,
) -> RunLayout:
    settings = load_settings(data_dir=data_dir, seed=seed, **{"durable_writes": False, **overrides})
    stack = open_intel(settings, clock)
    try:
        if warm:
            await warm_mock_intel(stack.cache, stack.registry, clock, list(settings.pools), seed)
        report = await run_campaign(
            settings,
            env=MockClmmEnv(),
            intel=stack.intel,
            episodes=episodes,
            clock=clock,
            runner_factory=runner_factory,
        )
    finally:
        stack.close()
    assert report.complete
    return RunLayout(data_dir, report.run_id)


async def test_twenty_episodes_pass_the_validator(data_dir: Path, clock: FakeClock) -> None:
    layout = await campaign(data_dir, clock, 20)
    assert validate_run(layout) == []
    summary = orjson.loads(layout.summary_path.read_bytes())
    assert summary["episodes"] == summary["successful"] == 20
    assert summary["risk_scalar_applied"] == "20/20"
    assert len(layout.episode_dirs()) == 20
    assert not layout.active_marker.exists()
    run_info = orjson.loads((layout.run_dir / "run.json").read_bytes())
    assert run_info["seed"] == 5
    # The run's own log file holds its lines, as JSON.
    lines = [orjson.loads(x) for x in layout.campaign_log.read_bytes().splitlines()]
    assert {"campaign_started", "campaign_finished", "episode_done"} <= {x["event"] for x in lines}
    assert all(x["run_id"] == layout.run_id for x in lines)


async def test_same_seed_gives_identical_proposals_results_rewards(
    tmp_path: Path, clock: FakeClock
) -> None:
    first = await campaign(tmp_path / "a", FakeClock(clock.now()), 8, seed=99)
    second = await campaign(tmp_path / "b", FakeClock(clock.now()), 8, seed=99)
    other = await campaign(tmp_path / "c", FakeClock(clock.now()), 8, seed=100)
    for name in ("proposal.json", "result.json", "reward.json"):
        a = [strip(orjson.loads((d / name).read_bytes())) for d in first.episode_dirs()]
        b = [strip(orjson.loads((d / name).read_bytes())) for d in second.episode_dirs()]
        c = [strip(orjson.loads((d / name).read_bytes())) for d in other.episode_dirs()]
        assert a == b, name
        assert a != c, name


async def test_interrupted_episodes_of_a_dead_run_are_completed_next_start(
    data_dir: Path, clock: FakeClock
) -> None:
    layout = await campaign(data_dir, clock, 3)
    # Simulate a crash in episode 2: outcome and metadata never written, temp file left.
    victim = layout.episode_dir("ep_000002")
    for name in ("result.json", "reward.json", "metadata.json", "timings.json"):
        (victim / name).unlink()
    (victim / ".result.json.tmp-1-dead").write_bytes(b'{"half')
    layout.active_marker.write_text("999999999")  # a pid that does not exist
    assert validate_run(layout) != []
    await campaign(data_dir, clock, 1)
    assert validate_run(layout) == []
    failure = orjson.loads((victim / "failure.json").read_bytes())
    assert failure["stage"] == "interrupted"
    summary = orjson.loads(layout.summary_path.read_bytes())
    assert (summary["successful"], summary["failed"]) == (2, 1)


async def test_cold_cache_campaign_runs(data_dir: Path, clock: FakeClock) -> None:
    layout = await campaign(data_dir, clock, 3, warm=False)
    for folder in layout.episode_dirs():
        hygiene = orjson.loads((folder / "metadata.json").read_bytes())["extra"]["intel_hygiene"]
        assert hygiene["missing_or_too_old"] == hygiene["total_queries"]
    assert validate_run(layout) == []


def test_cli_campaign_then_validate_and_show(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    assert main(["campaign", "--episodes", "4", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    (run,) = list_runs(data_dir)
    # Off a terminal the summary is the last JSON line on stdout.
    summary = orjson.loads(out.splitlines()[-1])
    assert summary["event"] == "campaign_summary" and summary["run_dir"] == str(run.run_dir)
    assert main(["runs", "validate"]) == 0
    assert "0 violation(s)" in capsys.readouterr().out
    assert main(["runs", "show", "latest"]) == 0
    out = capsys.readouterr().out
    assert "ep_000004" in out and "successful" in out
    assert main(["runs", "list"]) == 0
    assert run.run_id in capsys.readouterr().out


def test_cli_validate_reports_violations_with_exit_1(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    assert main(["campaign", "--episodes", "2", "--seed", "3"]) == 0
    (run,) = list_runs(data_dir)
    os.remove(run.episode_dir("ep_000001") / "metadata.json")
    capsys.readouterr()
    assert main(["runs", "validate", run.run_id]) == 1
    out = capsys.readouterr().out
    assert "missing metadata.json" in out and "ep_000001" in out


def test_cli_unknown_run_exits_2(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "validate", "run_nope"]) == 2
    assert "run_nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["campaign", "--episodes", "0"],
        ["campaign", "--episodes", "ten"],
        ["campaign", "--workers", "99"],
        ["nosuchcommand"],
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "error" in err


def test_every_episode_setting_arrives_from_configuration() -> None:
    from clmmd.service.runs.opening import episode_settings

    settings = load_settings(
        learn_from_mock=True,
        position_size_usd=1234.0,
        horizon_hours=6.0,
        risk_scalar_override=0.4,
        risk_profile={"vol=high": 0.3},
        fresh_pct_floor=12.5,
        reward_weights={"range": 2.0},
    )
    got = episode_settings(settings, "run_x", 77)
    assert got.learn_from_mock is True
    assert got.size_usd == 1234.0
    assert got.horizon_hours == 6.0
    assert got.risk_scalar_override == 0.4
    assert dict(got.risk_profile) == {"vol=high": 0.3}
    assert got.fresh_pct_floor == 12.5
    assert got.reward_weights.range == 2.0 and got.reward_weights.pnl == 1.0
    assert got.config_hash == settings.config_hash()
    assert got.campaign_seed == 77


async def test_configured_risk_scalar_applied_in_every_episode(
    data_dir: Path, clock: FakeClock
) -> None:
    layout = await campaign(data_dir, clock, 6, risk_scalar_override=0.3, position_size_usd=5000.0)
    for folder in layout.episode_dirs():
        result = orjson.loads((folder / "result.json").read_bytes())
        assert result["risk_scalar_applied"] == 0.3
        assert result["size_usd_applied"] == pytest.approx(1500.0)
    summary = orjson.loads(layout.summary_path.read_bytes())
    assert summary["risk_scalar_applied"] == "6/6"


async def test_reward_weights_reach_reward_json(data_dir: Path, clock: FakeClock) -> None:
    layout = await campaign(data_dir, clock, 2, reward_weights={"range": 3.0})
    for folder in layout.episode_dirs():
        reward = orjson.loads((folder / "reward.json").read_bytes())
        assert reward["weights"]["range"] == 3.0


async def test_learning_campaigns_are_reproducible_despite_workers(
    tmp_path: Path, clock: FakeClock
) -> None:
    runs = []
    for name in ("a", "b"):
        layout = await campaign(
            tmp_path / name,
            FakeClock(clock.now()),
            12,
            seed=21,
            learn_from_mock=True,
            episode_workers=4,
            fresh_pct_floor=0.0,
        )
        runs.append(layout)
    a, b = (
        [strip(orjson.loads((d / "proposal.json").read_bytes())) for d in r.episode_dirs()]
        for r in runs
    )
    assert a == b
    states = [orjson.loads((tmp_path / n / "agent" / "state.json").read_bytes()) for n in "ab"]
    assert states[0]["regimes"] == states[1]["regimes"]
    applied = [
        orjson.loads((d / "metadata.json").read_bytes())["learning_update_applied"]
        for d in runs[0].episode_dirs()
    ]
    assert any(applied)


async def test_pnl_decomposes_to_the_cent_over_200_episodes(
    data_dir: Path, clock: FakeClock
) -> None:
    """PnL = HODL return − IL + fees − gas, episode by episode and in every total shown."""
    from clmmd.service.analysis.report_data import load_run
    from clmmd.service.analysis.report_plots import decomposition_totals

    layout = await campaign(data_dir, clock, 200, seed=17)
    checked = 0
    worst = 0.0
    for folder in layout.episode_dirs():
        r = orjson.loads((folder / "result.json").read_bytes())
        terms = r["hodl_return_usd"] - r["il_usd"] + r["fees_usd"] - r["gas_cost_usd"]
        worst = max(worst, abs(terms - r["pnl_usd"]))
        assert round(terms, 2) == round(r["pnl_usd"], 2), (folder.name, r)
        # The terms are not all the same sign: the check exercises every one of them.
        checked += 1
    assert checked == 200 and worst < 1e-6
    results = [orjson.loads((f / "result.json").read_bytes()) for f in layout.episode_dirs()]
    assert (
        min(r["hodl_return_usd"] for r in results) < 0 < max(r["hodl_return_usd"] for r in results)
    )
    assert min(r["il_usd"] for r in results) > 0 and min(r["gas_cost_usd"] for r in results) > 0
    s = orjson.loads(layout.summary_path.read_bytes())
    total = (
        s["total_hodl_return_usd"] - s["total_il_usd"] + s["total_fees_usd"] - s["total_gas_usd"]
    )
    assert abs(total - s["total_pnl_usd"]) < 0.005
    assert s["total_hodl_return_usd"] == pytest.approx(
        sum(r["hodl_return_usd"] for r in results), abs=1e-5
    )
    shown = decomposition_totals(load_run(layout, clock.now()).rows)
    assert shown is not None
    assert shown["pnl"] == pytest.approx(s["total_pnl_usd"], abs=1e-5)
    assert shown["hodl"] - shown["il"] + shown["fees"] - shown["gas"] == pytest.approx(
        shown["pnl"], abs=0.005
    )


class HeldStore(ArtifactStore):
    """Durable store that holds the last write of the episodes in ``held`` until released."""

    def __init__(self, layout: RunLayout, held: set[str]) -> None:
        super().__init__(layout, durable=True)
        self.held = held
        self.release = threading.Event()

    def apply(self, write: EpisodeWrite) -> None:
        if write.episode_id in self.held and "metadata.json" in write.names:
            self.release.wait(30)
        super().apply(write)


@contextlib.asynccontextmanager
async def held_campaign(
    data_dir: Path, clock: FakeClock, **kw: Any
) -> AsyncIterator[tuple[HeldStore, asyncio.Task[CampaignReport]]]:
    """A durable 3-episode mock campaign on one worker whose store holds episode 1's last
    write until ``store.release`` is set; yields the store and the running campaign."""
    stores: list[HeldStore] = []

    def runner_factory(**runner_kw: Any) -> EpisodeRunner:
        stores.append(HeldStore(runner_kw["store"].layout, {"ep_000001"}))
        # Held in this process's store: the writes take its threads, not writer processes.
        return EpisodeRunner(**{**runner_kw, "store": stores[0], "writers": None})

    settings = load_settings(data_dir=data_dir, seed=5, durable_writes=True, episode_workers=1)
    stack = open_intel(settings, clock)
    try:
        await warm_mock_intel(stack.cache, stack.registry, clock, list(settings.pools), 5)
        task = asyncio.create_task(
            run_campaign(
                settings,
                env=MockClmmEnv(),
                intel=stack.intel,
                episodes=3,
                clock=clock,
                runner_factory=runner_factory,
                **kw,
            )
        )
        while not stores and not task.done():
            await asyncio.sleep(0.01)
        yield stores[0], task
    finally:
        stack.close()


async def test_durable_campaign_counts_an_episode_once_its_last_files_are_written(
    data_dir: Path, clock: FakeClock
) -> None:
    """One worker, episode 1's last write held: the worker computes and writes episode 2
    meanwhile, counts nothing it has not written, and starts episode 3 only after episode 1."""
    counted: list[int] = []

    def on_done(record: EpisodeRecord) -> None:
        (run,) = list_runs(data_dir)
        written = [d for d in run.episode_dirs() if (d / "metadata.json").exists()]
        assert len(written) >= len(counted) + 1  # counted only once on disk
        counted.append(len(written))

    async with held_campaign(data_dir, clock, on_episode_done=on_done) as (store, campaign_task):
        layout = store.layout
        for _ in range(3000):
            if len(counted) == 1 or campaign_task.done():
                break
            await asyncio.sleep(0.01)
        assert (layout.episode_dir("ep_000002") / "metadata.json").exists()
        assert not (layout.episode_dir("ep_000001") / "metadata.json").exists()
        assert not layout.episode_dir("ep_000003").exists()  # at most one episode finishing
        store.release.set()
        report = await campaign_task
    assert report.complete and len(counted) == 3
    assert validate_run(layout) == []
    summary = orjson.loads(layout.summary_path.read_bytes())
    assert summary["episodes"] == summary["successful"] == 3


async def test_a_stop_waits_for_episodes_finishing_on_disk_and_counts_them(
    data_dir: Path, clock: FakeClock
) -> None:
    stop = CampaignStop()
    async with held_campaign(data_dir, clock, stop=stop) as (store, campaign_task):
        for _ in range(3000):
            if (store.layout.episode_dir("ep_000002") / "metadata.json").exists():
                break
            await asyncio.sleep(0.01)
        stop.request("SIGTERM")
        stop.request("SIGTERM")  # hurry: no drain deadline, workers cancelled at once
        await asyncio.sleep(0.1)
        assert not campaign_task.done()  # episode 1's last write is still landing
        store.release.set()
        report = await campaign_task
    assert report.interrupted_by == "SIGTERM"
    assert len(report.records) == 2 and report.interrupted == [] and report.not_started == 1
    assert validate_run(store.layout) == []
    assert orjson.loads(store.layout.summary_path.read_bytes())["episodes"] == 2


async def test_durable_campaign_with_workers_passes_the_validator(
    data_dir: Path, clock: FakeClock
) -> None:
    layout = await campaign(data_dir, clock, 16, durable_writes=True, episode_workers=4)
    assert validate_run(layout) == []
    summary = orjson.loads(layout.summary_path.read_bytes())
    assert summary["episodes"] == summary["successful"] == 16
    assert len(layout.episode_dirs()) == 16


async def test_only_campaigns_long_enough_for_them_start_writer_processes(
    data_dir: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[WriterProcesses | None] = []

    def runner_factory(**runner_kw: Any) -> EpisodeRunner:
        seen.append(runner_kw["writers"])
        return EpisodeRunner(**runner_kw)

    for threshold in (campaign_module.WRITER_PROCESSES_FROM, 3):
        monkeypatch.setattr(campaign_module, "WRITER_PROCESSES_FROM", threshold)
        layout = await campaign(
            data_dir, clock, 3, durable_writes=True, runner_factory=runner_factory
        )
        assert validate_run(layout) == []
    short, long = seen
    assert short is None  # 3 episodes: threads, no interpreter to wait for
    assert isinstance(long, WriterProcesses)
