from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import diskcache
import orjson
import pytest
from structlog.testing import capture_logs

from clmmd.artifacts.base.clock import FakeClock, utc_iso
from clmmd.scheduler.cache import DEFAULT_SIZE_LIMIT_BYTES, IntelCache, decode_envelope

KEY = "gas_regime"
DATA = {"rows": [{"gas_price_gwei": 12.5}], "partial": False}


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[IntelCache]:
    c = IntelCache(tmp_path / "cache")
    yield c
    c.close()


async def test_success_then_quality_moves_with_time(cache: IntelCache) -> None:
    clock = FakeClock()
    await cache.record_success(KEY, DATA, source="mock", now=clock.now(), ttl_s=300)
    data, meta = cache.get_with_quality(KEY, clock.now(), 1800)
    assert data == DATA
    assert meta == {"quality": "fresh", "age_s": 0.0, "asof": utc_iso(clock.now())}
    clock.advance(300.04)
    data, meta = cache.get_with_quality(KEY, clock.now(), 1800)
    assert (meta["quality"], meta["age_s"], data) == ("stale", 300.0, DATA)
    clock.advance(1500)
    data, meta = cache.get_with_quality(KEY, clock.now(), 1800)
    assert (meta["quality"], data) == ("too_old", None)


def test_unknown_key_is_missing(cache: IntelCache) -> None:
    data, meta = cache.get_with_quality("nope", FakeClock().now(), 100)
    assert data is None
    assert meta == {"quality": "missing", "age_s": None, "asof": None}


async def test_failure_keeps_last_good_data(cache: IntelCache) -> None:
    clock = FakeClock()
    first = clock.now()
    await cache.record_success(KEY, DATA, source="dune_latest", now=first, ttl_s=300)
    clock.advance(400)
    env = await cache.record_failure(KEY, "HTTP 500: boom", clock.now(), 300)
    assert env.data == DATA and env.fetched_at == utc_iso(first)
    assert env.source == "dune_latest"
    assert (env.ok, env.error, env.attempted_at) == (
        False,
        "HTTP 500: boom",
        utc_iso(clock.now()),
    )
    # What another reader (fresh mirror) sees on disk is the same.
    other = IntelCache(cache.directory)
    try:
        assert other.get_envelope(KEY) == env
        data, meta = other.get_with_quality(KEY, clock.now(), 1800)
        assert (data, meta["quality"], meta["age_s"]) == (DATA, "stale", 400.0)
    finally:
        other.close()


async def test_failure_without_earlier_data_stays_missing(cache: IntelCache) -> None:
    clock = FakeClock()
    env = await cache.record_failure(KEY, "401 unauthorized", clock.now(), 300)
    assert env.data is None and env.fetched_at is None and env.ok is False
    data, meta = cache.get_with_quality(KEY, clock.now(), 1800)
    assert (data, meta["quality"]) == (None, "missing")
    assert cache.get_envelope(KEY) == env


async def test_second_instance_sees_writes_from_disk(cache: IntelCache) -> None:
    reader = IntelCache(cache.directory)
    try:
        assert reader.get_envelope(KEY) is None
        await cache.record_success(KEY, DATA, source="mock", now=FakeClock().now(), ttl_s=60)
        assert reader.get_envelope(KEY) is not None
        assert reader.keys() == [KEY]
    finally:
        reader.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json{",
        b"[1, 2]",
        orjson.dumps({"ok": True}),
        orjson.dumps(
            {
                "ok": True,
                "data": {"rows": []},
                "fetched_at": None,
                "ttl_s": 5,
                "error": None,
                "source": "mock",
                "attempted_at": "2026-01-01T00:00:00Z",
            }
        ),
        {"a": "pickled python object"},
    ],
)
async def test_corrupt_entry_is_logged_and_missing(tmp_path: Path, raw: Any) -> None:
    directory = tmp_path / "cache"
    with diskcache.Cache(str(directory)) as raw_cache:
        raw_cache.set(KEY, raw)
    cache = IntelCache(directory)
    try:
        with capture_logs() as logs:
            data, meta = cache.get_with_quality(KEY, FakeClock().now(), 100)
        assert (data, meta["quality"]) == (None, "missing")
        assert [entry["event"] for entry in logs] == ["cache_entry_corrupt"]
        # A failure over a corrupt entry replaces it with a clean no-data envelope.
        env = await cache.record_failure(KEY, "x", FakeClock().now(), 60)
        assert env.data is None and cache.get_envelope(KEY) == env
    finally:
        cache.close()


async def test_expiry_is_garbage_collection_only(cache: IntelCache) -> None:
    await cache.record_success(
        KEY, DATA, source="mock", now=FakeClock().now(), ttl_s=300, max_age_s=1800
    )
    _, expire_time = cache._disk.get(KEY, expire_time=True)
    assert expire_time is not None
    assert expire_time - time.time() > 6 * 1800  # far beyond max_age, not ttl


def test_size_limit_and_eviction_policy(tmp_path: Path) -> None:
    default = IntelCache(tmp_path / "a")
    custom = IntelCache(tmp_path / "b", size_limit=10 * 1024 * 1024)
    try:
        assert default._disk.size_limit == DEFAULT_SIZE_LIMIT_BYTES == 256 * 1024 * 1024
        assert custom._disk.size_limit == 10 * 1024 * 1024
        assert custom._disk.eviction_policy == "least-recently-stored"
    finally:
        default.close()
        custom.close()
    with pytest.raises(ValueError):
        IntelCache(tmp_path / "c", size_limit=0)


async def test_disk_writes_happen_off_the_event_loop_thread(
    cache: IntelCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real_set = cache._disk.set

    def spy_set(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real_set(*args, **kwargs)

    monkeypatch.setattr(cache._disk, "set", spy_set)
    await cache.record_success(KEY, DATA, source="mock", now=FakeClock().now(), ttl_s=60)
    await cache.record_failure(KEY, "e", FakeClock().now(), 60)
    assert len(threads) == 2
    assert threading.get_ident() not in threads


async def test_mirror_is_not_aliased_to_the_callers_data(cache: IntelCache) -> None:
    data: dict[str, Any] = {"rows": [{"v": 1}], "partial": False}
    await cache.record_success(KEY, data, source="mock", now=FakeClock().now(), ttl_s=60)
    data["rows"].append({"v": 2})
    env = cache.get_envelope(KEY)
    assert env is not None and env.data == {"rows": [{"v": 1}], "partial": False}


async def test_add_if_absent_is_atomic_and_separate(cache: IntelCache) -> None:
    assert await cache.add_if_absent("trigger:abc", b"1", expire=60) is True
    assert await cache.add_if_absent("trigger:abc", b"2", expire=60) is False
    assert await cache.add_if_absent(KEY, b"1", expire=60) is True  # no clash with envelopes
    assert cache.get_envelope(KEY) is None
    assert cache.keys() == []


async def test_close_is_idempotent_and_stops_writes(cache: IntelCache) -> None:
    await cache.record_success(KEY, DATA, source="mock", now=FakeClock().now(), ttl_s=60)
    cache.close()
    cache.close()
    assert cache.get_envelope(KEY) is not None  # still served from the mirror
    assert cache.get_envelope("other") is None
    with pytest.raises(RuntimeError, match="closed"):
        await cache.record_success("k2", DATA, source="mock", now=FakeClock().now(), ttl_s=60)


def test_decode_envelope_accepts_what_the_cache_writes() -> None:
    env = {
        "ok": False,
        "data": None,
        "fetched_at": None,
        "ttl_s": 60,
        "error": "boom",
        "source": None,
        "attempted_at": "2026-01-01T00:00:00Z",
    }
    assert decode_envelope(orjson.dumps(env)).model_dump(exclude_none=True) == {
        k: v for k, v in env.items() if v is not None
    }
    with pytest.raises(ValueError):
        decode_envelope(orjson.dumps({**env, "source": "somewhere"}))
    with pytest.raises(ValueError):
        decode_envelope(orjson.dumps({**env, "attempted_at": "yesterday"}))


async def test_quality_counts_from_when_dune_finished_not_when_we_fetched(
    cache: IntelCache,
) -> None:
    clock = FakeClock()
    two_days_ago = clock.now() - timedelta(days=2)
    await cache.record_success(
        KEY, DATA, source="dune_latest", now=clock.now(), ttl_s=300, asof=two_days_ago
    )
    data, meta = cache.get_with_quality(KEY, clock.now(), 1800)
    assert (data, meta["quality"]) == (None, "too_old")
    assert meta["asof"] == utc_iso(two_days_ago) and meta["age_s"] == 2 * 86400
    # The same rows computed a minute ago are fresh.
    await cache.record_success(
        KEY,
        DATA,
        source="dune_sql",
        now=clock.now(),
        ttl_s=300,
        asof=clock.now() - timedelta(minutes=1),
    )
    assert cache.get_with_quality(KEY, clock.now(), 1800)[1]["quality"] == "fresh"


async def test_meta_documents_update_atomically_and_stay_out_of_keys(cache: IntelCache) -> None:
    def add(doc: dict[str, Any] | None) -> dict[str, Any]:
        return {"n": (doc or {}).get("n", 0) + 1}

    for _ in range(3):
        await cache.update_meta("counter", add)
    assert cache.get_meta("counter") == {"n": 3}
    assert cache.keys() == []
