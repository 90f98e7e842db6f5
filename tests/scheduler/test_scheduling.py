from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clmmd.artifacts.base.clock import FakeClock, utc_iso
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.mock_source import MockSource
from clmmd.scheduler.planner import candidate_requests, keys_for_pool
from clmmd.scheduler.refresher import Refresher
from clmmd.scheduler.registry import PRIORITIES, load_registry
from clmmd.scheduler.scheduling import JOB_ID, TICK_TIMED_OUT, RefreshScheduler
from clmmd.scheduler.source import FetchRequest, FetchResult, IntelSource
from tests.conftest import CapturedLogs

POOLS = [
    "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
    "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8",
    "0x11b815efB8f581194ae79006d24E0d814B7697F6",
]
REGISTRY = load_registry()
SPECS = {spec.name: spec for spec in REGISTRY}


class GatedSource:
    """Fetches wait for their key's gate (or the master gate); records what ran at once."""

    def __init__(self) -> None:
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.open_all = asyncio.Event()
        self.calls: list[str] = []
        self.active: Counter[str] = Counter()
        self.max_active = 0
        self.max_same_key = 0

    @property
    def running(self) -> int:
        return sum(self.active.values())

    async def fetch(self, request: FetchRequest) -> FetchResult:
        key = request.key
        self.calls.append(key)
        self.active[key] += 1
        self.max_active = max(self.max_active, self.running)
        self.max_same_key = max(self.max_same_key, self.active[key])
        try:
            gate = asyncio.ensure_future(self.gates[key].wait())
            master = asyncio.ensure_future(self.open_all.wait())
            try:
                await asyncio.wait({gate, master}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gate.cancel()
                master.cancel()
            return FetchResult({"rows": [], "partial": False, "key": key}, "mock")
        finally:
            self.active[key] -= 1

    async def close(self) -> None:
        return None


async def until(condition: Callable[[], bool], *, spins: int = 3000) -> None:
    """Wait for ``condition``; mostly bare yields, a millisecond now and then for APScheduler."""
    for i in range(spins):
        if condition():
            return
        await asyncio.sleep(0.001 if i % 10 == 9 else 0)
    raise AssertionError("condition never became true")


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[IntelCache]:
    c = IntelCache(tmp_path / "cache")
    yield c
    c.close()


class Rig:
    def __init__(self, cache: IntelCache) -> None:
        self.cache = cache
        self.clock = FakeClock()
        self.source = GatedSource()
        self.made: list[RefreshScheduler] = []

    def make(
        self,
        *,
        source: IntelSource | None = None,
        pools: Sequence[str] = POOLS[:1],
        workers: int = 2,
        fetch_timeout_s: float = 30,
        active_pools: Callable[[], Sequence[str]] | None = None,
        **kwargs: float,
    ) -> RefreshScheduler:
        refresher = Refresher(
            source or self.source,
            self.cache,
            REGISTRY,
            self.clock,
            workers=workers,
            fetch_timeout_s=fetch_timeout_s,
        )
        scheduler = RefreshScheduler(
            refresher,
            self.cache,
            REGISTRY,
            self.clock,
            active_pools=active_pools or (lambda: pools),
            **kwargs,  # type: ignore[arg-type]
        )
        self.made.append(scheduler)
        return scheduler


@pytest.fixture
async def rig(cache: IntelCache) -> AsyncIterator[Rig]:
    r = Rig(cache)
    yield r
    for scheduler in r.made:
        await scheduler.stop()


def all_keys(pools: Sequence[str]) -> list[str]:
    return [req.key for _, req in candidate_requests(REGISTRY, pools)]


def spec_of(key: str) -> str:
    return key.split(":")[0]


async def test_tick_fetches_due_keys_p0_first_then_most_stale(rig: Rig) -> None:
    keys = all_keys(POOLS[:1])
    rng = random.Random(3)
    now = rig.clock.now()
    # Every key has data of a random age from fresh to too old, except a few missing ones.
    ages: dict[str, float] = {}
    for key in keys[2:]:
        spec = SPECS[spec_of(key)]
        age = rng.uniform(0, spec.max_age_seconds * 1.5)
        ages[key] = age
        await rig.cache.record_success(
            key,
            {"rows": [], "partial": False},
            source="mock",
            now=now - timedelta(seconds=age),
            ttl_s=spec.ttl_seconds,
        )
    rig.source.open_all.set()
    report = await rig.make(workers=1).tick()

    fresh = {k for k, age in ages.items() if age < SPECS[spec_of(k)].ttl_seconds}
    assert fresh and set(rig.source.calls) == set(keys) - fresh
    assert len(rig.source.calls) == len(set(rig.source.calls))
    order = [
        (
            PRIORITIES.index(SPECS[spec_of(k)].priority),
            ages.get(k, float("inf")) / SPECS[spec_of(k)].ttl_seconds,
        )
        for k in rig.source.calls
    ]
    for (p1, s1), (p2, s2) in itertools.pairwise(order):
        assert p1 < p2 or (p1 == p2 and s1 >= s2)
    assert report.ok == len(rig.source.calls) and report.failed == 0


async def test_tick_against_mock_source_is_usable_for_once_mode(rig: Rig) -> None:
    scheduler = rig.make(source=MockSource(rig.clock), pools=POOLS, pool_cap=2)
    first = await scheduler.tick()
    assert first.ok == len(all_keys(POOLS[:2])) and first.failed == 0
    assert (await scheduler.tick()).outcomes == ()  # everything fresh now
    stats = scheduler.stats()
    assert stats["ticks"] == 2
    assert stats["last_tick_at"] == utc_iso(rig.clock.now())
    assert stats["last_report"]["requested"] == 0
    assert stats["running"] is False and stats["pool_cap"] == 2


async def test_never_more_than_workers_in_flight_across_ticks_and_triggers(rig: Rig) -> None:
    workers = 3
    scheduler = rig.make(pools=POOLS, workers=workers)
    tasks = [
        asyncio.create_task(scheduler.tick()),
        asyncio.create_task(scheduler.refresh_pool(POOLS[0])),
        asyncio.create_task(scheduler.refresh_pool(POOLS[2], priorities=["P2"])),
    ]
    rng = random.Random(11)
    while not all(t.done() for t in tasks):
        await until(lambda: rig.source.running > 0 or all(t.done() for t in tasks))
        assert rig.source.running <= workers
        assert len(scheduler.stats()["in_flight"]) <= workers
        running = [k for k, n in rig.source.active.items() if n]
        if running:
            rig.source.gates[rng.choice(running)].set()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert rig.source.max_active == workers
    assert scheduler.stats()["peak_in_flight"] == workers
    assert rig.source.max_same_key == 1


async def test_trigger_storm_during_a_tick_fetches_each_key_once(rig: Rig) -> None:
    scheduler = rig.make(pools=POOLS[:1], workers=2)
    tick = asyncio.create_task(scheduler.tick())
    await until(lambda: rig.source.running == 2)
    storm = [asyncio.create_task(scheduler.refresh_pool(POOLS[0])) for _ in range(1000)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    rig.source.open_all.set()
    tick_report = await tick
    reports = await asyncio.gather(*storm)

    assert sorted(rig.source.calls) == sorted(all_keys(POOLS[:1]))
    assert rig.source.max_same_key == 1 and rig.source.max_active <= 2
    assert tick_report.ok == len(all_keys(POOLS[:1]))
    pool_keys = keys_for_pool(REGISTRY, POOLS[0])
    for report in reports:
        assert sorted(o.key for o in report.outcomes) == sorted(pool_keys)
        assert {o.status for o in report.outcomes} == {"skipped_duplicate"}


async def test_refresh_pool_forces_fresh_keys(rig: Rig) -> None:
    rig.source.open_all.set()
    scheduler = rig.make(pools=POOLS[:1])
    await scheduler.tick()
    rig.source.calls.clear()
    report = await scheduler.refresh_pool(POOLS[0].upper().replace("0X", "0x"))
    assert sorted(rig.source.calls) == sorted(keys_for_pool(REGISTRY, POOLS[0]))
    assert report.ok == len(rig.source.calls)
    assert (await scheduler.tick()).outcomes == ()


async def test_hung_fetch_times_out_and_the_next_tick_still_runs(rig: Rig) -> None:
    keys = all_keys(POOLS[:1])
    hung = keys[-1]
    for key in keys:
        if key != hung:
            rig.source.gates[key].set()
    scheduler = rig.make(fetch_timeout_s=0.05, interval_s=3600)
    await scheduler.start()  # first tick at once, through APScheduler
    await until(lambda: scheduler.stats()["ticks"] == 1)
    last = scheduler.stats()["last_report"]
    assert (last["ok"], last["failed"]) == (len(keys) - 1, 1)
    env = rig.cache.get_envelope(hung)
    assert env is not None and "timed out" in (env.error or "")

    rig.clock.advance(SPECS["gas_regime"].ttl_seconds)
    rig.source.calls.clear()
    scheduler.run_now()
    await until(lambda: scheduler.stats()["ticks"] == 2)
    assert "gas_regime" in rig.source.calls and hung in rig.source.calls
    last = scheduler.stats()["last_report"]
    assert last["ok"] >= 1 and last["failed"] == 1
    assert scheduler.stats()["errors"] == 0


async def test_tick_is_bounded_and_reports_what_finished(
    rig: Rig, captured_logs: CapturedLogs
) -> None:
    keys = all_keys(POOLS[:1])
    hung = keys[0]  # gas_regime, P0: started first
    for key in keys[1:]:
        rig.source.gates[key].set()
    # asyncio.timeout runs on the loop's real clock: leave the keys that do finish ample time
    # (cache writes go through a thread; a loaded CI machine can take tens of ms for them).
    scheduler = rig.make(workers=2, tick_timeout_s=2.0)
    report = await scheduler.tick()
    by_key = {o.key: o for o in report.outcomes}
    assert report.outcomes[0].key == hung
    assert by_key[hung].status == "failed" and by_key[hung].error == TICK_TIMED_OUT
    assert all(by_key[k].status == "ok" for k in keys[1:])
    assert scheduler.stats()["timeouts"] == 1
    (event,) = captured_logs.events("refresh_tick_timed_out")
    assert event["still_running"] == [hung] and event["finished"] == len(keys) - 1
    # The hung fetch outlives the tick (its own deadline governs it) and keeps its claim.
    assert scheduler.stats()["in_flight"] == [hung]
    rig.source.gates[hung].set()
    await until(lambda: scheduler.stats()["in_flight"] == [])
    assert (await scheduler.tick()).outcomes == ()


async def test_overlapping_run_is_skipped_logged_and_counted(
    rig: Rig, captured_logs: CapturedLogs
) -> None:
    scheduler = rig.make(interval_s=3600)
    await scheduler.start()
    await until(lambda: rig.source.running == 2)  # the first tick is stuck on its fetches
    scheduler.run_now()
    await until(lambda: scheduler.stats()["max_instances"] == 1)
    assert len(captured_logs.events("refresh_tick_skipped_still_running")) == 1
    assert scheduler.stats()["ticks"] == 0
    rig.source.open_all.set()
    await until(lambda: scheduler.stats()["ticks"] == 1)
    assert rig.source.max_same_key == 1


async def test_missed_run_is_logged_and_counted(rig: Rig, captured_logs: CapturedLogs) -> None:
    scheduler = rig.make(interval_s=3600)
    await scheduler.start(run_immediately=False)
    aps = scheduler.apscheduler
    assert aps is not None
    job = aps.get_job(JOB_ID)
    assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 3600)
    # A run time further in the past than the grace time is dropped as missed.
    aps.modify_job(
        JOB_ID, misfire_grace_time=1, next_run_time=datetime.now(UTC) - timedelta(seconds=30)
    )
    await until(lambda: scheduler.stats()["missed"] == 1)
    (event,) = captured_logs.events("refresh_tick_missed")
    assert event["missed"] == 1 and isinstance(event["scheduled_at"], str)
    assert scheduler.stats()["ticks"] == 0 and rig.source.calls == []


async def test_failing_tick_is_logged_and_counted_and_the_next_one_runs(
    rig: Rig, captured_logs: CapturedLogs
) -> None:
    calls = 0

    def pools() -> Sequence[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("pool list unavailable")
        return POOLS[:1]

    rig.source.open_all.set()
    scheduler = rig.make(active_pools=pools, interval_s=3600)
    await scheduler.start()
    await until(lambda: scheduler.stats()["errors"] == 1)
    (event,) = captured_logs.events("refresh_tick_error")
    assert event["error"] == "RuntimeError: pool list unavailable"
    scheduler.run_now()
    await until(lambda: scheduler.stats()["ticks"] == 1)
    assert scheduler.stats()["last_report"]["ok"] == len(all_keys(POOLS[:1]))


async def test_stop_cancels_a_hung_tick_and_is_idempotent(
    rig: Rig, captured_logs: CapturedLogs
) -> None:
    scheduler = rig.make(interval_s=3600)
    await scheduler.start()
    await until(lambda: rig.source.running == 2)
    assert scheduler.running
    await asyncio.wait_for(scheduler.stop(), timeout=5)
    assert rig.source.running == 0
    stats = scheduler.stats()
    assert stats["running"] is False and stats["in_flight"] == [] and stats["ticks"] == 0
    assert captured_logs.events("refresh_tick_error") == []
    await scheduler.stop()
    assert len(captured_logs.events("refresh_scheduler_stopped")) == 1
    with pytest.raises(RuntimeError, match="stopped"):
        await scheduler.start()
    with pytest.raises(RuntimeError, match="not running"):
        scheduler.run_now()
    # Nothing runs after stop, even once the source would answer.
    rig.source.open_all.set()
    await asyncio.sleep(0.01)
    assert scheduler.stats()["ticks"] == 0


async def test_stop_before_start_closes_the_refresher(rig: Rig) -> None:
    scheduler = rig.make()
    await scheduler.stop()
    assert scheduler.stats()["running"] is False


def test_constructor_validates(cache: IntelCache) -> None:
    refresher = Refresher(GatedSource(), cache, REGISTRY, FakeClock())
    for kwargs, field in [
        ({"interval_s": 0}, "interval_s"),
        ({"pool_cap": -1}, "pool_cap"),
        ({"tick_timeout_s": 0}, "tick_timeout_s"),
    ]:
        with pytest.raises(ValueError, match=field):
            RefreshScheduler(
                refresher,
                cache,
                REGISTRY,
                FakeClock(),
                active_pools=lambda: POOLS,
                **kwargs,  # type: ignore[arg-type]
            )
    default = RefreshScheduler(
        refresher, cache, REGISTRY, FakeClock(), active_pools=lambda: POOLS, interval_s=10
    )
    assert 0 < default.tick_timeout_s < 10
