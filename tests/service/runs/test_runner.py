"""EpisodeRunner: every step's failure leaves a complete folder naming the step."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.agent.proposer import ProposalContext
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.episode_write import EpisodeWrite, FolderNotMadeError
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import Proposal
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.validate import validate_episode
from clmmd.env.base import (
    DEFAULT_POOL_ADDRESS,
    EnvHealth,
    ExecutionOutcome,
    ExecutionRequest,
    ExecutionSkipped,
    PoolValidationError,
    pool_by_address,
)
from clmmd.env.mock import MockClmmEnv
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.intel import MarketIntelligence
from clmmd.scheduler.mock_source import MockSource
from clmmd.scheduler.refresher import Refresher
from clmmd.scheduler.registry import load_registry
from clmmd.service.runs.runner import AgentHandle, EpisodeRunner, EpisodeSettings, derive_seed

POOL = pool_by_address(DEFAULT_POOL_ADDRESS)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[IntelCache]:
    c = IntelCache(tmp_path / "cache")
    yield c
    c.close()


async def warm(cache: IntelCache, clock: FakeClock) -> None:
    registry = load_registry()
    refresher = Refresher(MockSource(clock), cache, registry, clock)
    await refresher.refresh_once([POOL.address])


def make_runner(tmp_path: Path, cache: IntelCache, clock: FakeClock, **kw: Any) -> EpisodeRunner:
    layout = RunLayout(tmp_path / "data", "run_20260101_000000_abcd")
    store = kw.pop("store", None) or ArtifactStore(layout, durable=False)
    store.open_run()
    settings = EpisodeSettings(
        run_id=layout.run_id,
        campaign_seed=kw.pop("seed", 7),
        config_hash="cafebabe",
        exec_mode="mock",
        learn_from_mock=kw.pop("learn_from_mock", False),
        size_usd=10_000.0,
        horizon_hours=24.0,
        risk_scalar_override=kw.pop("risk_scalar_override", None),
        fresh_pct_floor=kw.pop("fresh_pct_floor", 50.0),
    )
    intel = kw.pop("intel", None) or MarketIntelligence(cache, load_registry(), clock)
    return EpisodeRunner(
        settings=settings,
        store=store,
        env=kw.pop("env", None) or MockClmmEnv(),
        intel=intel,
        agent=kw.pop("agent", None) or AgentHandle(),
        pool=POOL,
        clock=clock,
        **kw,
    )


def read(path: Path) -> dict[str, Any]:
    data = orjson.loads(path.read_bytes())
    assert isinstance(data, dict)
    return data


async def test_successful_episode_writes_every_artifact(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    await warm(cache, clock)
    runner = make_runner(tmp_path, cache, clock)
    record = await runner.run(1)
    folder = runner.store.layout.episode_dir("ep_000001")
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "logs.jsonl",
        "metadata.json",
        "proposal.json",
        "result.json",
        "reward.json",
        "timings.json",
    ]
    assert validate_episode(folder, runner.settings.run_id) == []
    assert record.status == "success"
    metadata = read(folder / "metadata.json")
    assert metadata["seed"] == derive_seed(7, 1)
    assert metadata["config_hash"] == "cafebabe"
    assert (
        metadata["extra"]["intel_hygiene"]["fresh"]
        == metadata["extra"]["intel_hygiene"]["total_queries"]
        == 10
    )
    assert metadata["learning_update_applied"] is False
    assert "LEARN_FROM_MOCK" in metadata["learning_update_reason"]
    events = [
        orjson.loads(line)["event"] for line in (folder / "logs.jsonl").read_bytes().splitlines()
    ]
    assert events == ["proposed", "executed", "learning"]


async def test_cold_cache_still_runs_and_reports_missing(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    runner = make_runner(tmp_path, cache, clock)
    record = await runner.run(1)
    assert record.status == "success"
    meta = read(runner.store.layout.episode_dir("ep_000001") / "metadata.json")
    hygiene = meta["extra"]["intel_hygiene"]
    assert hygiene["missing_or_too_old"] == hygiene["total_queries"] > 0
    assert hygiene["fresh_pct"] == 0.0
    assert all(v["quality"] == "missing" for v in meta["extra"]["intel_snapshot"].values())


class Boom(RuntimeError):
    pass


class FailingIntel:
    def snapshot(self, pool_address: str, pair: str, lookback_hours: float) -> Any:
        raise Boom("cache unreadable")


def failing_proposer(ctx: ProposalContext, state: AgentState) -> Proposal:
    raise Boom("agent crashed")


class FailingEnv:
    name = "mock"

    async def health(self) -> EnvHealth | None:
        return None

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        raise Boom("simulator crashed")


class ZeroSizeEnv:
    """Returns an outcome the reward function must reject (size 0)."""

    name = "mock"

    async def health(self) -> EnvHealth | None:
        return None

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        outcome = await MockClmmEnv().execute(request)
        return replace(outcome, size_usd_applied=0.0)


class ResultWriteFails(ArtifactStore):
    """result.json cannot be written; the files before it in the same batch land."""

    def apply(self, write: EpisodeWrite) -> None:
        if "result.json" in write.names:
            super().apply(write._replace(files=write.files[: write.names.index("result.json")]))
            raise OSError(28, "No space left on device")
        super().apply(write)


@pytest.mark.parametrize(
    ("stage", "kwargs", "message"),
    [
        ("snapshot", {"intel": FailingIntel()}, "cache unreadable"),
        ("propose", {"proposer": failing_proposer}, "agent crashed"),
        ("execute", {"env": FailingEnv()}, "simulator crashed"),
        ("validate", {"env": "invalid-pool"}, "fee_tier: pool fee 3000"),
        ("reward", {"env": ZeroSizeEnv()}, "size_usd_applied must be positive"),
        ("write_result", {"store": "result-fails"}, "No space left"),
    ],
)
async def test_failure_in_each_stage_yields_failure_json(
    stage: str,
    kwargs: dict[str, Any],
    message: str,
    tmp_path: Path,
    cache: IntelCache,
    clock: FakeClock,
) -> None:
    if kwargs.get("env") == "invalid-pool":
        kwargs["env"] = GatedEnv(PoolValidationError("fee_tier", "pool fee 3000 != proposal 500"))
    if kwargs.get("store") == "result-fails":
        kwargs["store"] = ResultWriteFails(
            RunLayout(tmp_path / "data", "run_20260101_000000_abcd"), durable=False
        )
    runner = make_runner(tmp_path, cache, clock, **kwargs)
    record = await runner.run(1)
    folder = runner.store.layout.episode_dir("ep_000001")
    assert record.status == "failed"
    failure = read(folder / "failure.json")
    assert failure["stage"] == stage
    assert message in failure["error_message"]
    assert "Traceback" in failure["traceback"]
    assert failure["hint"]
    assert not (folder / "result.json").exists()
    assert validate_episode(folder, runner.settings.run_id) == []
    proposal = read(folder / "proposal.json")
    if stage in ("snapshot", "propose"):
        assert proposal["proposed"] is False
        assert message in proposal["reason"]
    else:
        assert proposal["proposed"] is True
    assert read(folder / "metadata.json")["learning_update_applied"] is False


async def test_learning_applied_when_every_gate_passes(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    await warm(cache, clock)
    agent = AgentHandle()
    runner = make_runner(tmp_path, cache, clock, learn_from_mock=True, agent=agent)
    await runner.run(1)
    meta = read(runner.store.layout.episode_dir("ep_000001") / "metadata.json")
    assert meta["learning_update_applied"] is True, meta["learning_update_reason"]
    assert agent.state.version == 1


async def test_learning_update_error_is_recorded_not_fatal(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    await warm(cache, clock)

    class BrokenAgent(AgentHandle):
        async def learn(self, regime_key: str, width_ticks: int, reward: float) -> AgentState:
            raise Boom("state store down")

    runner = make_runner(tmp_path, cache, clock, learn_from_mock=True, agent=BrokenAgent())
    record = await runner.run(1)
    meta = read(runner.store.layout.episode_dir("ep_000001") / "metadata.json")
    assert record.status == "success"
    assert meta["learning_update_applied"] is False
    assert "state store down" in meta["learning_update_reason"]


async def test_configured_risk_scalar_reaches_the_executor(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    await warm(cache, clock)
    runner = make_runner(tmp_path, cache, clock, risk_scalar_override=0.25)
    await runner.run(1)
    folder = runner.store.layout.episode_dir("ep_000001")
    result = read(folder / "result.json")
    assert result["risk_scalar_applied"] == 0.25
    assert result["size_usd_applied"] == pytest.approx(2_500.0)
    assert read(folder / "proposal.json")["risk_scalar"] == 0.25


def test_seed_derivation_is_stable_and_distinct() -> None:
    assert derive_seed(1, 1) == derive_seed(1, 1)
    assert len({derive_seed(1, i) for i in range(1, 500)}) == 499
    assert derive_seed(1, 2) != derive_seed(2, 1)


class GatedEnv:
    """A real-like env that reports Gateway health and raises a scripted refusal."""

    name = "real"

    def __init__(self, refusal: Exception) -> None:
        self.refusal = refusal

    async def health(self) -> EnvHealth | None:
        return EnvHealth(status="ok", latency_ms=12.5)

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        raise self.refusal


async def test_gate_refusal_is_a_skipped_result_naming_the_gate(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    env = GatedEnv(ExecutionSkipped("I_UNDERSTAND_LIVE_RISK", "not set to 'yes'"))
    runner = make_runner(tmp_path, cache, clock, env=env)
    record = await runner.run(1)
    folder = runner.store.layout.episode_dir("ep_000001")
    result = read(folder / "result.json")
    assert record.status == "skipped"
    assert result["status"] == "skipped"
    assert "I_UNDERSTAND_LIVE_RISK" in result["reason"]
    assert result["simulation"] == {"source": "live", "gate": "I_UNDERSTAND_LIVE_RISK"}
    metadata = read(folder / "metadata.json")
    assert (metadata["gateway_health"], metadata["gateway_latency_ms"]) == ("ok", 12.5)
    assert validate_episode(folder, runner.settings.run_id) == []


class RecordingStore(ArtifactStore):
    """Records every blocking call the runner makes (one call = one thread hop): the folder
    when the call makes it, then the files it writes."""

    def __init__(self, layout: RunLayout) -> None:
        super().__init__(layout, durable=False)
        self.calls: list[tuple[str, ...]] = []

    def apply(self, write: EpisodeWrite) -> None:
        self.calls.append(("folder",) * (write.proposal is not None) + write.names)
        super().apply(write)


@pytest.mark.parametrize("learns", [False, True])
async def test_an_episode_writes_in_two_hops_unless_the_agent_learns_in_between(
    tmp_path: Path, cache: IntelCache, clock: FakeClock, learns: bool
) -> None:
    await warm(cache, clock)
    store = RecordingStore(RunLayout(tmp_path / "data", "run_20260101_000000_abcd"))
    runner = make_runner(tmp_path, cache, clock, store=store, learn_from_mock=learns)
    await runner.run(1)
    last = ("timings.json", "metadata.json")
    if learns:  # the outcome is on disk before the agent learns from it
        expected = [("folder",), ("reward.json", "result.json"), last]
    else:
        expected = [("folder",), ("reward.json", "result.json", *last)]
    assert store.calls == expected
    folder = store.layout.episode_dir("ep_000001")
    assert validate_episode(folder, runner.settings.run_id) == []
    lines = (folder / "logs.jsonl").read_bytes().splitlines()
    events = [orjson.loads(line)["event"] for line in lines]
    assert events == ["proposed", "executed", "learning"]


async def test_non_durable_writes_go_through_one_lane_durable_ones_through_the_pool(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    fast = make_runner(tmp_path / "fast", cache, clock)
    durable_store = ArtifactStore(RunLayout(tmp_path / "d", "run_20260101_000000_abcd"))
    durable = make_runner(tmp_path / "durable", cache, clock, store=durable_store)
    assert fast.io is not None
    assert durable.io is None


class GatedStore(ArtifactStore):
    """Durable store whose folder creation and last write wait for a gate (a thread event),
    so a test sees what the episode does while its writes are still on their way."""

    def __init__(self, layout: RunLayout) -> None:
        super().__init__(layout, durable=True)
        self.folder_gate = threading.Event()
        self.last_gate = threading.Event()
        self.folder_gate.set()
        self.last_gate.set()
        self.events: list[str] = []

    def make_folder(self, write: EpisodeWrite) -> None:
        self.folder_gate.wait(30)
        super().apply(write._replace(logs=b"", files=()))
        self.events.append(f"folder {write.episode_id}")

    def apply(self, write: EpisodeWrite) -> None:
        if write.proposal is not None:
            self.make_folder(write)
            write = write._replace(proposal=None)
            if not write.files and not write.logs:
                return
        if "metadata.json" in write.names:
            self.last_gate.wait(30)
        super().apply(write)
        self.events.append(f"written {write.episode_id}")


class ExecutionLog:
    """A simulated (or, by name, real) environment that notes when it executes."""

    def __init__(self, store: GatedStore, name: str = "mock") -> None:
        self.name = name
        self.store = store
        self.mock = MockClmmEnv()

    async def health(self) -> EnvHealth | None:
        return None

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        self.store.events.append(f"execute {request.episode_id}")
        return self.mock.run(request)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(3000):  # the writes run on threads: give them up to ~30 s
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


async def gated_runner(
    tmp_path: Path,
    cache: IntelCache,
    clock: FakeClock,
    env: str | None = "mock",
    store_type: type[GatedStore] = GatedStore,
) -> tuple[GatedStore, EpisodeRunner]:
    """A runner on warmed intel writing to a gated store; ``env`` names the ExecutionLog it
    executes in (None: the plain mock environment)."""
    await warm(cache, clock)
    store = store_type(RunLayout(tmp_path / "data", "run_20260101_000000_abcd"))
    env_kw: dict[str, Any] = {} if env is None else {"env": ExecutionLog(store, env)}
    return store, make_runner(tmp_path, cache, clock, store=store, **env_kw)


async def test_a_simulation_runs_before_its_folder_which_its_first_write_makes(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    store, runner = await gated_runner(tmp_path, cache, clock)
    store.folder_gate.clear()
    episode = asyncio.create_task(runner.run(1))
    await until(lambda: "execute ep_000001" in store.events)
    assert not store.layout.episode_dir("ep_000001").exists()
    store.folder_gate.set()
    record = await episode
    assert record.status == "success"
    assert store.events == ["execute ep_000001", "folder ep_000001", "written ep_000001"]
    assert validate_episode(store.layout.episode_dir("ep_000001"), runner.settings.run_id) == []


async def test_real_execution_waits_for_its_folder(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    store, runner = await gated_runner(tmp_path, cache, clock, "real")
    store.folder_gate.clear()
    episode = asyncio.create_task(runner.run(1))
    await asyncio.sleep(0.2)
    assert store.events == []  # nothing executed before the folder (and proposal) is on disk
    store.folder_gate.set()
    await episode
    assert store.events == ["folder ep_000001", "execute ep_000001", "written ep_000001"]


async def test_a_folder_that_cannot_be_made_loses_the_episode_after_its_simulation(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:

    class FullDisk(GatedStore):
        def make_folder(self, write: EpisodeWrite) -> None:
            raise FolderNotMadeError(OSError(errno.ENOSPC, "No space left on device"))

    store, runner = await gated_runner(tmp_path, cache, clock, store_type=FullDisk)
    with pytest.raises(OSError, match="No space"):
        await runner.run(1)
    assert store.events == ["execute ep_000001"]  # nothing written: no failure.json anywhere
    assert list(store.layout.episodes_dir.iterdir()) == []


async def test_start_returns_once_the_last_write_is_under_way(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    store, runner = await gated_runner(tmp_path, cache, clock, None)
    store.last_gate.clear()
    finishing = await runner.start(1)
    folder = store.layout.episode_dir("ep_000001")
    await asyncio.sleep(0.05)
    assert not finishing.done()
    assert (folder / "proposal.json").exists() and not (folder / "metadata.json").exists()
    store.last_gate.set()
    record = await finishing
    assert record.status == "success"
    assert validate_episode(folder, runner.settings.run_id) == []


async def test_start_cancelled_before_the_hand_off_cancels_its_episode(
    tmp_path: Path, cache: IntelCache, clock: FakeClock
) -> None:
    # Real execution waits for the folder, so the episode is still before its hand-off.
    store, runner = await gated_runner(tmp_path, cache, clock, "real")
    store.folder_gate.clear()
    caller = asyncio.create_task(runner.start(1))
    await asyncio.sleep(0.1)
    assert not caller.done()
    caller.cancel()
    store.folder_gate.set()  # the folder write in flight still lands whole
    with pytest.raises(asyncio.CancelledError):
        await caller
    folder = store.layout.episode_dir("ep_000001")
    assert (folder / "proposal.json").exists()
    assert not (folder / "metadata.json").exists()  # left for recovery: 'interrupted'
    assert store.events == ["folder ep_000001"]  # never executed
    assert [t for t in asyncio.all_tasks() if t.get_name() == "episode-ep_000001"] == []
