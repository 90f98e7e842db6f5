from __future__ import annotations

import ast
import importlib.util
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.intel import MarketIntelligence, closest_window, hygiene
from clmmd.scheduler.mock_source import MockSource
from clmmd.scheduler.refresher import Refresher
from clmmd.scheduler.registry import Registry, cache_key, load_registry

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
PAIR = "WETH-USDC"
REPO = Path(__file__).resolve().parents[2]
REGISTRY = load_registry()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[IntelCache]:
    c = IntelCache(tmp_path / "cache")
    yield c
    c.close()


async def warm(cache: IntelCache, clock: FakeClock, registry: Registry = REGISTRY) -> None:
    report = await Refresher(MockSource(clock), cache, registry, clock).refresh_once([POOL])
    assert report.failed == 0


def test_cold_cache_is_all_missing(cache: IntelCache) -> None:
    snap = MarketIntelligence(cache, REGISTRY, FakeClock()).snapshot(POOL, PAIR, 1)
    total = len(REGISTRY.enabled())
    assert snap.hygiene == {
        "total_queries": total,
        "fresh": 0,
        "stale": 0,
        "missing_or_too_old": total,
        "fresh_pct": 0.0,
    }
    assert all(
        e == {"quality": "missing", "age_s": None, "asof": None} for e in snap.entries.values()
    )
    assert set(snap.data.values()) == {None}
    assert snap.market_inputs() == snap.market_inputs().__class__()
    assert snap.value("gas_regime", "regime") is None


async def test_warm_cache_gives_fresh_snapshot_and_market_inputs(cache: IntelCache) -> None:
    clock = FakeClock()
    await warm(cache, clock)
    clock.advance(12.34)
    snap = MarketIntelligence(cache, REGISTRY, clock).snapshot(POOL, PAIR, 1)
    assert snap.hygiene["fresh"] == snap.hygiene["total_queries"] == 10
    assert snap.hygiene["fresh_pct"] == 100.0
    assert {e["age_s"] for e in snap.entries.values()} == {12.3}
    assert snap.inputs == {"pool_address": POOL, "pair": PAIR, "lookback_hours": 1}
    health = snap.rows("pool_health_score")[0]
    gas = snap.rows("gas_regime")[0]
    inputs = snap.market_inputs()
    assert inputs.price_usd == health["price_usd"]
    assert inputs.volatility_daily == health["volatility_daily"]
    assert inputs.volume_usd_per_day == health["volume_usd_24h"]
    assert inputs.active_liquidity_usd == health["active_liquidity_usd"]
    assert inputs.gas_price_gwei == gas["gas_price_gwei"]
    assert inputs.eth_price_usd == gas["eth_price_usd"]
    assert snap.value("gas_regime", "regime") in {"low", "normal", "high"}
    assert 0 <= snap.value("toxic_flow", "toxic_share") <= 1
    assert snap.value("no_such_query", "x") is None
    assert snap.market_inputs() is inputs  # worked out once per snapshot
    later = MarketIntelligence(cache, REGISTRY, clock).snapshot(POOL, PAIR, 1)
    assert later.market_inputs() == inputs and later.market_inputs() is not inputs


async def test_hygiene_tracks_quality_per_key(cache: IntelCache) -> None:
    clock = FakeClock()
    await warm(cache, clock)
    clock.advance(1000)
    snap = MarketIntelligence(cache, REGISTRY, clock).snapshot(POOL, PAIR, 1)
    specs = REGISTRY.enabled()
    expected_fresh = sum(1 for s in specs if s.ttl_seconds > 1000)
    expected_stale = sum(1 for s in specs if s.ttl_seconds <= 1000 < s.max_age_seconds)
    assert 0 < expected_fresh < len(specs) and expected_stale > 0
    assert snap.hygiene["fresh"] == expected_fresh
    assert snap.hygiene["stale"] == expected_stale
    assert snap.hygiene["fresh_pct"] == round(100 * expected_fresh / len(specs), 1)
    assert snap.entries["gas_regime"]["quality"] == "stale"
    assert snap.market_inputs().gas_price_gwei is not None  # stale data is still usable
    clock.advance(REGISTRY.get("gas_regime").max_age_seconds)
    snap = MarketIntelligence(cache, REGISTRY, clock).snapshot(POOL, PAIR, 1)
    assert snap.entries["gas_regime"]["quality"] == "too_old"
    assert snap.data["gas_regime"] is None
    assert snap.market_inputs().gas_price_gwei is None


async def test_inputs_are_read_again_whenever_the_data_behind_them_changes(
    cache: IntelCache,
) -> None:
    clock = FakeClock()
    await warm(cache, clock)
    intel = MarketIntelligence(cache, REGISTRY, clock)
    first = intel.snapshot(POOL, PAIR, 1).market_inputs()
    clock.advance(5)
    assert intel.snapshot(POOL, PAIR, 1).market_inputs() is first  # same data: read once
    clock.advance(3600)
    await warm(cache, clock)  # a refresh: new envelopes, new prices
    refreshed = intel.snapshot(POOL, PAIR, 1)
    assert refreshed.market_inputs() is not first
    assert refreshed.market_inputs().price_usd == refreshed.value("pool_health_score", "price_usd")
    assert refreshed.market_inputs().price_usd != first.price_usd
    clock.advance(REGISTRY.get("gas_regime").max_age_seconds)
    aged = intel.snapshot(POOL, PAIR, 1)  # the same envelopes, but gas_regime is too old now
    assert aged.data["gas_regime"] is None
    assert aged.market_inputs().gas_price_gwei is None
    assert refreshed.market_inputs().gas_price_gwei is not None


async def test_window_follows_lookback(cache: IntelCache) -> None:
    registry = load_registry(enable=["pool_swaps", "pool_metrics"])
    intel = MarketIntelligence(cache, registry, FakeClock())
    pool = POOL.lower()
    for lookback, swaps, metrics in ((1, "1h", "6h"), (5, "6h", "6h"), (20, "24h", "24h")):
        snap = intel.snapshot(POOL, PAIR, lookback)
        assert f"pool_swaps:{pool}:{swaps}" in snap.entries
        assert f"pool_metrics:{pool}:{metrics}" in snap.entries
        assert snap.hygiene["total_queries"] == 12
    assert closest_window(registry.get("pool_swaps"), 3.5) == "1h"  # tie: the shorter one
    with pytest.raises(ValueError):
        intel.snapshot(POOL, PAIR, 0)


@pytest.mark.parametrize(
    ("row", "expected_price"),
    [
        ({"price_usd": -3.0}, None),
        ({"price_usd": "3000"}, None),
        ({"price_usd": True}, None),
        ({"price_usd": None}, None),
        ({"price_usd": 0}, None),
        ({"price_usd": 2999}, 2999.0),
    ],
)
async def test_unusable_values_become_none(
    cache: IntelCache, row: dict[str, Any], expected_price: float | None
) -> None:
    clock = FakeClock()
    key = cache_key(REGISTRY.get("pool_health_score"), POOL, "1h")
    data = {"rows": [{**row, "volume_usd_24h": 0.0}], "partial": False}
    await cache.record_success(key, data, source="mock", now=clock.now(), ttl_s=600)
    inputs = MarketIntelligence(cache, REGISTRY, clock).snapshot(POOL, PAIR, 1).market_inputs()
    assert inputs.price_usd == expected_price
    assert inputs.volume_usd_per_day == 0.0  # zero volume is a real observation


async def test_metadata_extra_is_json_and_matches_the_seed_shape(cache: IntelCache) -> None:
    clock = FakeClock()
    await warm(cache, clock)
    snap = MarketIntelligence(cache, REGISTRY, clock).snapshot(POOL, PAIR, 1)
    extra = orjson.loads(orjson.dumps(snap.as_metadata_extra()))
    assert set(extra) == {"intel_snapshot", "intel_inputs", "intel_hygiene"}
    assert set(extra["intel_hygiene"]) == {
        "total_queries",
        "fresh",
        "stale",
        "missing_or_too_old",
        "fresh_pct",
    }
    for entry in extra["intel_snapshot"].values():
        assert set(entry) == {"quality", "age_s", "asof"}
    extra["intel_hygiene"]["fresh"] = -1
    assert snap.hygiene["fresh"] == 10  # the snapshot is not aliased to what it hands out


def test_hygiene_of_nothing() -> None:
    assert hygiene([])["fresh_pct"] == 0.0
    mixed = hygiene(
        [{"quality": q, "age_s": None, "asof": None} for q in ("fresh", "stale", "too_old")]
    )
    assert (mixed["missing_or_too_old"], mixed["fresh_pct"]) == (1, 33.3)


async def test_snapshot_reads_what_another_process_wrote(cache: IntelCache) -> None:
    clock = FakeClock()
    await warm(cache, clock)
    reader = IntelCache(cache.directory)
    try:
        snap = MarketIntelligence(reader, REGISTRY, clock).snapshot(POOL, PAIR, 1)
        assert snap.hygiene["fresh"] == 10
    finally:
        reader.close()


FORBIDDEN = (
    "aiohttp",
    "socket",
    "clmmd.scheduler.dune",
    "clmmd.scheduler.dune_source",
    "clmmd.scheduler.refresher",
)


def _repo_imports(module: str, seen: set[str]) -> None:
    """Collect ``module`` and every in-repo module it imports, transitively (statically)."""
    if module in seen:
        return
    seen.add(module)
    if not module.startswith("clmmd."):
        return
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # "from package.module import Name": Name is no module
        return
    if spec is None or spec.origin is None or not spec.origin.startswith(str(REPO)):
        return
    path = Path(spec.origin)
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            _repo_imports(name, seen)


@pytest.mark.parametrize("root", ["clmmd.scheduler.intel", "clmmd.scheduler.cache"])
def test_read_path_imports_no_network_layer_statically(root: str) -> None:
    seen: set[str] = set()
    _repo_imports(root, seen)
    offending = sorted(m for m in seen for bad in FORBIDDEN if m == bad or m.startswith(bad + "."))
    assert offending == []
    assert "clmmd.scheduler.cache" in seen


def test_snapshot_works_with_network_blocked() -> None:
    code = f"""
import asyncio, pathlib, socket, sys, tempfile
sys.modules["aiohttp"] = None  # any import of aiohttp now fails
def refuse(*args, **kwargs):
    raise AssertionError("network used on the read path")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.intel import MarketIntelligence
from clmmd.scheduler.registry import load_registry
from clmmd.artifacts.base.clock import FakeClock
clock = FakeClock()
cache = IntelCache(pathlib.Path(tempfile.mkdtemp()))
data = {{"rows": [{{"gas_price_gwei": 9.0, "eth_price_usd": 3000.0}}], "partial": False}}
asyncio.run(cache.record_success("gas_regime", data, source="mock", now=clock.now(), ttl_s=300))
snap = MarketIntelligence(cache, load_registry(), clock).snapshot({POOL!r}, "WETH-USDC", 1)
loaded = sorted(
    m for m, mod in sys.modules.items()
    if mod is not None and m.startswith(("aiohttp", "clmmd.scheduler.dune"))
)
print(snap.hygiene["fresh"], snap.market_inputs().gas_price_gwei, loaded)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 9.0 []"


def test_fresh_pct_is_rounded_to_one_decimal() -> None:
    entries = [{"quality": "fresh", "age_s": 1.0, "asof": "x"}] * 2 + [
        {"quality": "missing", "age_s": None, "asof": None}
    ]
    assert hygiene(entries)["fresh_pct"] == 66.7  # type: ignore[arg-type]
    assert not math.isnan(hygiene(entries)["fresh_pct"])  # type: ignore[arg-type]
