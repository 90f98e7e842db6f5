from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.mock_source import MockSource
from clmmd.scheduler.planner import PlannedFetch, plan_refresh
from clmmd.scheduler.refresher import Refresher
from clmmd.scheduler.registry import load_registry
from clmmd.scheduler.source import FetchRequest, FetchResult, IntelFetchError

POOLS = [
    "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
    "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8",
    "0x11b815efB8f581194ae79006d24E0d814B7697F6",
]
REGISTRY = load_registry()


class GatedSource:
    """Each fetch waits until its key's gate opens (or the master gate); nothing sleeps."""

    def __init__(self) -> None:
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.open_all = asyncio.Event()
        self.calls: list[str] = []
        self.active = 0
        self.max_active = 0
        self.failures: dict[str, BaseException] = {}

    async def fetch(self, request: FetchRequest) -> FetchResult:
        self.calls.append(request.key)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            gate = asyncio.ensure_future(self.gates[request.key].wait())
            master = asyncio.ensure_future(self.open_all.wait())
            try:
                await asyncio.wait({gate, master}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gate.cancel()
                master.cancel()
            if request.key in self.failures:
                raise self.failures[request.key]
            return FetchResult({"rows": [], "partial": False, "key": request.key}, "mock")
        finally:
            self.active -= 1

    async def close(self) -> None:
        return None


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    # Cache writes run in worker threads: on a loaded machine one can outlast any fixed number
    # of loop turns (a 10,000-turn bound failed under load), so the bound is real time.
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.001)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[IntelCache]:
    c = IntelCache(tmp_path / "cache")
    yield c
    c.close()


def cold_plan(pools: int = 3) -> list[PlannedFetch]:
    return plan_refresh(REGISTRY, POOLS[:pools], {}, FakeClock().now())


@pytest.mark.parametrize("workers", [1, 3])
async def test_bounded_concurrency_and_start_order(cache: IntelCache, workers: int) -> None:
    source = GatedSource()
    refresher = Refresher(source, cache, REGISTRY, FakeClock(), workers=workers)
    planned = cold_plan()
    task = asyncio.create_task(refresher.refresh(planned))
    await until(lambda: source.active == workers)
    assert refresher.in_flight == {p.key for p in planned[:workers]}
    assert planned[workers].key in refresher.pending
    for item in planned:  # release in order, one at a time
        key = item.key
        await until(lambda: key in source.calls)  # noqa: B023 (awaited at once)
        assert source.active <= workers
        source.gates[item.key].set()
    report = await task
    assert source.max_active == workers
    assert refresher.peak_in_flight == workers
    assert report.peak_concurrency == workers
    assert source.calls == [p.key for p in planned]
    assert [o.key for o in report.outcomes] == [p.key for p in planned]
    assert report.ok == len(planned) and report.failed == 0
    assert refresher.in_flight == frozenset() and refresher.pending == frozenset()
    for item in planned:
        env = cache.get_envelope(item.key)
        assert (
            env is not None
            and env.ok
            and env.data
            == {
                "rows": [],
                "partial": False,
                "key": item.key,
            }
        )
        assert env.ttl_s == item.spec.ttl_seconds


async def test_single_flight_under_a_thousand_concurrent_requests(cache: IntelCache) -> None:
    source = GatedSource()
    refresher = Refresher(source, cache, REGISTRY, FakeClock(), workers=2)
    few = cold_plan(1)[:3]
    rng = random.Random(7)
    batches = [rng.sample(few, k=rng.randint(1, 3)) for _ in range(1000)]
    tasks = [asyncio.create_task(refresher.refresh(batch)) for batch in batches]
    await until(lambda: source.active == 2)
    await asyncio.sleep(0)
    source.open_all.set()
    reports = await asyncio.gather(*tasks)
    assert sorted(source.calls) == sorted(p.key for p in few)
    statuses = [o.status for r in reports for o in r.outcomes]
    assert statuses.count("ok") == 3
    assert statuses.count("skipped_duplicate") == sum(len(b) for b in batches) - 3
    assert source.max_active <= 2


async def test_duplicate_in_one_call_fetches_once(cache: IntelCache) -> None:
    source = GatedSource()
    source.open_all.set()
    refresher = Refresher(source, cache, REGISTRY, FakeClock())
    item = cold_plan(1)[0]
    report = await refresher.refresh([item, item])
    assert source.calls == [item.key]
    assert [o.status for o in report.outcomes] == ["ok", "skipped_duplicate"]


async def test_hung_fetch_times_out_while_others_complete(cache: IntelCache) -> None:
    source = GatedSource()
    planned = cold_plan(1)[:4]
    hung = planned[1].key
    for item in planned:
        if item.key != hung:
            source.gates[item.key].set()
    refresher = Refresher(source, cache, REGISTRY, FakeClock(), workers=2, fetch_timeout_s=0.05)
    report = await refresher.refresh(planned)
    by_key = {o.key: o for o in report.outcomes}
    assert by_key[hung].status == "failed"
    assert "timed out" in (by_key[hung].error or "")
    assert [by_key[p.key].status for p in planned if p.key != hung] == ["ok"] * 3
    env = cache.get_envelope(hung)
    assert env is not None and env.ok is False and "timed out" in (env.error or "")
    assert env.data is None
    assert refresher.in_flight == frozenset()


async def test_failure_keeps_last_good_data(cache: IntelCache) -> None:
    clock = FakeClock()
    item = cold_plan(1)[0]
    good = {"rows": [], "partial": False, "old": True}
    await cache.record_success(item.key, good, source="mock", now=clock.now(), ttl_s=1)
    clock.advance(5)
    source = GatedSource()
    source.open_all.set()
    source.failures[item.key] = IntelFetchError("HTTP 402: out of credits", retryable=False)
    report = await Refresher(source, cache, REGISTRY, clock).refresh([item])
    assert [(o.status, o.error) for o in report.outcomes] == [
        ("failed", "HTTP 402: out of credits")
    ]
    env = cache.get_envelope(item.key)
    assert env is not None
    assert (env.data, env.ok, env.error) == (good, False, "HTTP 402: out of credits")


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("source bug"), IntelFetchError("bad", retryable=True)],
)
async def test_failures_are_recorded_never_raised(
    cache: IntelCache, failure: BaseException
) -> None:
    source = GatedSource()
    source.open_all.set()
    planned = cold_plan(1)[:2]
    source.failures[planned[0].key] = failure
    report = await Refresher(source, cache, REGISTRY, FakeClock()).refresh(planned)
    assert [o.status for o in report.outcomes] == ["failed", "ok"]
    assert report.as_dict()["failed"] == 1


async def test_malformed_source_data_is_a_failure(cache: IntelCache) -> None:
    class BadSource(GatedSource):
        async def fetch(self, request: FetchRequest) -> FetchResult:
            return FetchResult({"no_rows": 1}, "mock")

    report = await Refresher(BadSource(), cache, REGISTRY, FakeClock()).refresh(cold_plan(1)[:1])
    assert report.outcomes[0].status == "failed"
    assert "rows" in (report.outcomes[0].error or "")


async def test_cancelled_call_releases_its_queued_claims(cache: IntelCache) -> None:
    source = GatedSource()
    refresher = Refresher(source, cache, REGISTRY, FakeClock(), workers=1)
    planned = cold_plan(1)[:3]
    first = asyncio.create_task(refresher.refresh(planned))
    await until(lambda: source.active == 1)
    waiter = asyncio.create_task(refresher.refresh([planned[1]]))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    report = await waiter
    assert report.outcomes[0].status == "skipped_duplicate"
    assert report.outcomes[0].error == "cancelled before start"
    # The fetch already running is not abandoned: it completes and is stored.
    source.gates[planned[0].key].set()
    await until(lambda: refresher.in_flight == frozenset())
    await asyncio.sleep(0)
    assert cache.get_envelope(planned[0].key) is not None
    # With the claims released the key can be fetched again.
    source.open_all.set()
    assert (await refresher.refresh([planned[1]])).ok == 1


async def test_close_cancels_running_fetches(cache: IntelCache) -> None:
    source = GatedSource()
    refresher = Refresher(source, cache, REGISTRY, FakeClock(), workers=2)
    task = asyncio.create_task(refresher.refresh(cold_plan(1)[:2]))
    await until(lambda: source.active == 2)
    await refresher.close()
    report = await task
    assert [o.error for o in report.outcomes] == ["cancelled", "cancelled"]


async def test_refresh_once_plans_against_the_cache(cache: IntelCache) -> None:
    clock = FakeClock()
    source = MockSource(clock)
    refresher = Refresher(source, cache, REGISTRY, clock)
    first = await refresher.refresh_once(POOLS, pool_cap=2)
    assert first.ok == 1 + 9 * 2 and first.failed == 0
    assert (await refresher.refresh_once(POOLS, pool_cap=2)).outcomes == ()
    clock.advance(REGISTRY.get("gas_regime").ttl_seconds)
    again = await refresher.refresh_once(POOLS, pool_cap=2)
    assert [o.key for o in again.outcomes] == ["gas_regime"]
    only_p2 = await refresher.refresh_once(POOLS[2:], priorities=["P2"])
    assert {o.key.split(":")[0] for o in only_p2.outcomes} == {
        "mev_risk",
        "toxic_flow",
        "jit_monitor",
    }


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="workers"):
        Refresher(GatedSource(), None, REGISTRY, FakeClock(), workers=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fetch_timeout_s"):
        Refresher(GatedSource(), None, REGISTRY, FakeClock(), fetch_timeout_s=0)  # type: ignore[arg-type]
