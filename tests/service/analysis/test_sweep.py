"""clmmd sweep: grid parsing, batching that cannot change results, fidelity to clmmd
evaluate, the run folder the head writes, the report section, the CLI."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import orjson
import pytest

from clmmd.agent.policy import ArmStats
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.validate import validate_run
from clmmd.env.base import KNOWN_POOLS, pool_by_address
from clmmd.service.analysis.evaluation import evaluate
from clmmd.service.analysis.report import write_report
from clmmd.service.analysis.sweep import (
    MIN_BATCH,
    TASKS_PER_WORKER,
    SweepGrid,
    default_batch_size,
    run_sweep,
    sweep_market,
)
from clmmd.service.analysis.sweep_exec import SerialExecutor
from clmmd.service.analysis.sweep_grid import (
    Arm,
    MarketSnapshot,
    SweepContext,
    evaluate_batch,
    make_batches,
    parse_arms,
    parse_seeds,
    run_batch,
)
from clmmd.service.cli.main import main
from clmmd.service.config import ConfigError, load_settings
from clmmd.service.runs.opening import episode_settings
from tests.service.analysis.conftest import REPLAY_POOL

POOLS = tuple(KNOWN_POOLS.values())[:2]
TRAINED = AgentState(
    version=3,
    arms={"gas=low|vol=mid|flow=clean": {2000: ArmStats(n=3, mean=0.4, m2=0.01)}},
)


def test_arms_and_seeds_parse_and_bad_entries_are_named() -> None:
    assert parse_arms("policy,5,2.5") == (Arm("policy"), Arm("static", 5.0), Arm("static", 2.5))
    assert parse_seeds("1,3-5") == (1, 3, 4, 5)
    for bad, message in [("5,x", "'x'"), ("0", "(0, 100)"), ("5,5", "twice")]:
        with pytest.raises(ValueError, match=message):
            parse_arms(bad)
    for bad, message in [("1,a", "'a'"), ("5-3", "low to high"), ("1,1", "twice")]:
        with pytest.raises(ValueError, match=message):
            parse_seeds(bad)


def _snapshots() -> list[MarketSnapshot]:
    from clmmd.agent.regime import MarketView
    from clmmd.env.base import MarketInputs

    return [
        MarketSnapshot(
            pool,
            seed,
            MarketInputs(price_usd=3000.0, volatility_daily=0.03, gas_price_gwei=10.0),
            MarketView(price_usd=3000.0, gas_regime="low", volatility_daily=0.03),
        )
        for pool in POOLS
        for seed in (1, 2)
    ]


def _context(tmp_path: Path, arms: str = "policy,5,20", episodes: int = 4) -> SweepContext:
    s = episode_settings(load_settings(data_dir=tmp_path), "run_x", 1)
    return SweepContext(s, TRAINED, tuple(_snapshots()), parse_arms(arms), episodes)


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batching_never_changes_what_is_evaluated(tmp_path: Path, batch_size: int) -> None:
    context = _context(tmp_path)
    (whole,) = make_batches(context.size, 10_000)
    reference = evaluate_batch(context, whole)
    batches = make_batches(context.size, batch_size)
    got = [e for b in batches for e in evaluate_batch(context, b)]
    assert len(got) == 2 * 2 * 3 * 4 == len(reference)
    assert got == reference
    assert [e.proposal.episode_id for e in got] == [f"ep_{i:06d}" for i in range(1, 49)]
    # Grid order: snapshot (pool, then seed), then arm, then episode index.
    assert [(e.pool_address, e.seed, e.arm.label, e.index) for e in got[:5]] == [
        (POOLS[0].address, 1, "policy", 1),
        (POOLS[0].address, 1, "policy", 2),
        (POOLS[0].address, 1, "policy", 3),
        (POOLS[0].address, 1, "policy", 4),
        (POOLS[0].address, 1, "±5%", 1),
    ]
    assert (got[-1].pool_address, got[-1].seed, got[-1].arm.label) == (POOLS[1].address, 2, "±20%")


def test_default_tasks_are_large_enough_and_keep_every_worker_busy() -> None:
    def tasks(total: int, workers: int) -> int:
        return -(-total // default_batch_size(total, workers))

    assert tasks(10_000, 2) == 2 * TASKS_PER_WORKER  # large grids: 4 tasks per worker
    assert default_batch_size(2_000, 2) == MIN_BATCH  # small grids: fewer, larger tasks
    assert tasks(600, 2) == 2 and tasks(3, 2) == 2  # but never an idle worker
    assert tasks(1, 4) == 1


def test_what_a_task_returns_decodes_to_what_it_evaluated(tmp_path: Path) -> None:
    context = _context(tmp_path)
    batch = make_batches(context.size, 7)[2]
    result = run_batch(context, batch)
    decoded = result.evaluations(context)
    assert decoded == evaluate_batch(context, batch) and len(decoded) == 7
    # Plain values only: no class (model, dataclass) is pickled, so none is looked up.
    assert pickle.loads(result.packed) == _NoClasses(io.BytesIO(result.packed)).load()


class _NoClasses(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        raise AssertionError(f"{module}.{name} was pickled")


@pytest.mark.parametrize("market", ["synthetic", "replay"])
async def test_cells_repeat_clmmd_evaluate_for_the_same_seed(
    tmp_path: Path, market: str, replay_history_file: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        durable_writes=False,
        market=market,
        replay_history=replay_history_file if market == "replay" else None,
    )
    pool = pool_by_address(settings.pools[0])
    grid = SweepGrid((pool,), parse_arms("policy,5"), (7,), 6)
    result = await run_sweep(settings, grid, SerialExecutor(), FakeClock(), state=TRAINED)
    report = await evaluate(
        settings, episodes=6, seed=7, baseline_width_pct=5.0, state=TRAINED, clock=FakeClock()
    )
    document = orjson.loads((result.layout.run_dir / "sweep.json").read_bytes())
    rewards = {
        arm: [e["reward"] for e in document["evaluations"] if e["arm"] == arm]
        for arm in ("policy", "±5%")
    }
    assert rewards["policy"] == [p.learned.values["reward"] for p in report.episodes]
    assert rewards["±5%"] == [p.baseline.values["reward"] for p in report.episodes]
    results = [orjson.loads((d / "result.json").read_bytes()) for d in result.layout.episode_dirs()]
    assert {r["simulation"].get("market", "synthetic") for r in results} == {market}


async def test_a_replay_sweep_needs_every_pools_history(
    tmp_path: Path, replay_history_file: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", market="replay", replay_history=replay_history_file
    )
    other = next(p for p in POOLS if p.address != settings.pools[0])
    grid = SweepGrid(POOLS, parse_arms("5"), (1,), 2)
    # CLMMD_REPLAY_HISTORY is one pool's history: the other pool is named.
    with pytest.raises(
        ConfigError, match=f"history of {settings.pools[0]}, not of .*{other.address}"
    ):
        await run_sweep(settings, grid, SerialExecutor(), FakeClock())
    # No history configured at all: the first pool without one is named, nothing is written.
    bare = load_settings(data_dir=tmp_path / "bare", market="replay")
    with pytest.raises(ConfigError, match=f"holds no history of {POOLS[0].address}"):
        await run_sweep(bare, grid, SerialExecutor(), FakeClock())
    assert not (tmp_path / "bare" / "runs").exists()


def test_cli_sweep_reads_the_market_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As every command does: CLMMD_MARKET=replay without a history is one line, exit 2.
    monkeypatch.setenv("CLMMD_MARKET", "replay")
    argv = ["--data-dir", str(tmp_path / "cli"), "sweep", "--pools", POOLS[1].address]
    assert main([*argv, "--seeds", "1", "--widths", "5", "--serial"]) == 2
    assert f"holds no history of {POOLS[1].address}" in capsys.readouterr().err
    assert not (tmp_path / "cli" / "runs").exists()


async def test_the_head_writes_a_valid_run_with_sweep_json_and_a_report(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", durable_writes=False)
    grid = SweepGrid(POOLS, parse_arms("policy,5,10"), (1, 2), 3)
    result = await run_sweep(settings, grid, SerialExecutor(), FakeClock(), batch_size=5)
    layout = result.layout
    assert validate_run(layout) == []
    run = orjson.loads((layout.run_dir / "run.json").read_bytes())
    assert run["kind"] == "sweep" and not layout.active_marker.exists()
    document = orjson.loads((layout.run_dir / "sweep.json").read_bytes())
    assert document["grid"]["evaluations"] == 36 == len(document["evaluations"])
    assert len(layout.episode_dirs()) == 36
    pooled = [c for c in document["cells"] if c["seed"] is None]
    assert len(pooled) == 2 * 3 and all(c["n"] == 6 for c in pooled)
    assert document["execution"]["executor"] == "serial"
    first = layout.episode_dirs()[0]
    metadata = orjson.loads((first / "metadata.json").read_bytes())
    assert metadata["learning_update_applied"] is False
    assert metadata["extra"]["intel_hygiene"]["fresh_pct"] == 100.0
    files = write_report(layout, FakeClock().now())
    html = files.html.read_text()
    assert '<figure id="sweep_heatmap">' in html and "±10%" in html
    assert any(p.name == "sweep_heatmap.png" for p in files.pngs)
    assert layout.run_dir.name in html


def test_what_crosses_the_wire_holds_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUNE_API_KEY", "sk-this-must-not-travel")
    settings = load_settings(data_dir=tmp_path)
    assert settings.dune_api_key is not None
    s = episode_settings(settings, "run_x", 1)
    context = SweepContext(s, TRAINED, tuple(_snapshots()), parse_arms("policy"), 2)
    (batch,) = make_batches(context.size, 100)
    payload = pickle.dumps(context) + pickle.dumps(batch) + pickle.dumps(run_batch(context, batch))
    assert b"sk-this-must-not-travel" not in payload


def test_a_replayed_market_crosses_without_its_file_path(
    tmp_path: Path, replay_history_file: Path
) -> None:
    settings = load_settings(data_dir=tmp_path, market="replay", replay_history=replay_history_file)
    market = sweep_market(settings, (REPLAY_POOL,))
    payload = pickle.dumps(market)
    assert [m.pool for m in market.replays] == [REPLAY_POOL]
    assert replay_history_file.name.encode() not in payload
    assert sweep_market(load_settings(data_dir=tmp_path), POOLS).replays == ()


def test_cli_sweep_serial_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pools = ",".join(p.address for p in POOLS)
    base = ["--data-dir", str(tmp_path / "d"), "sweep", "--pools", pools, "--seeds", "1-2"]
    assert main([*base, "--widths", "policy,5", "--episodes", "2", "--serial"]) == 0
    out = capsys.readouterr().out
    assert "16 evaluations (2 pools × 2 arms × 2 seeds × 2 episodes)" in out
    assert "±5%" in out and "clmmd report run_" in out
    assert main([*base, "--widths", "policy,abc", "--serial"]) == 2
    assert "'abc'" in capsys.readouterr().err
    assert main([*base[:4], "0xdead", "--seeds", "1", "--widths", "5", "--serial"]) == 2
    assert "unknown pool address '0xdead'" in capsys.readouterr().err
    assert main([*base, "--widths", "5", "--serial", "--workers", "2"]) == 2
    assert "--workers sizes the local Ray" in capsys.readouterr().err
    assert len(list((tmp_path / "d" / "runs").iterdir())) == 1  # bad input wrote nothing


async def test_a_sweep_that_dies_while_writing_is_completed_by_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clmmd.artifacts.recovery import recover_all
    from clmmd.artifacts.store import ArtifactStore

    settings = load_settings(data_dir=tmp_path / "data", durable_writes=False)
    grid = SweepGrid(POOLS[:1], parse_arms("5"), (1,), 6)
    calls = {"n": 0}
    original = ArtifactStore.write_batch

    def failing(self: ArtifactStore, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ArtifactStore, "write_batch", failing)
    with pytest.raises(OSError, match="No space"):
        await run_sweep(
            settings, grid, SerialExecutor(), FakeClock(), run_id="run_20261202_120000_dead"
        )
    monkeypatch.setattr(ArtifactStore, "write_batch", original)
    (run_dir,) = (settings.data_dir / "runs").iterdir()
    marker = run_dir / ".active"
    assert marker.exists()  # left for recovery: the run is not complete
    marker.write_text("999999999")  # the writer has exited
    recover_all(settings.data_dir, FakeClock().now())
    layout = RunLayout(settings.data_dir, run_dir.name)
    assert validate_run(layout) == []
    assert (run_dir / "episodes" / "ep_000004" / "failure.json").exists()
    assert not (run_dir / "episodes" / "ep_000005").exists()
