from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmmd.artifacts.base.clock import utc_iso
from clmmd.scheduler.cache import Envelope
from clmmd.scheduler.planner import (
    candidate_requests,
    keys_for_pool,
    plan_pool_refresh,
    plan_refresh,
)
from clmmd.scheduler.registry import PRIORITIES, load_registry

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POOLS = [
    "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
    "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8",
    "0x11b815efB8f581194ae79006d24E0d814B7697F6",
    "0x" + "ab" * 20,
]
REGISTRY = load_registry()


def envelope(age_s: float | None, *, ok: bool = True) -> Envelope:
    fetched = None if age_s is None else utc_iso(NOW - timedelta(seconds=age_s))
    return Envelope(
        ok=ok,
        data=None if fetched is None else {"rows": [], "partial": False},
        fetched_at=fetched,
        ttl_s=1,
        error=None if ok else "boom",
        source="mock",
        attempted_at=utc_iso(NOW),
    )


def expected_key_count(pools: int, priorities: set[str] | None = None) -> int:
    specs = REGISTRY.enabled(priorities)
    return sum(pools * len(s.windows) if s.pool_scoped else 1 for s in specs)


def test_cold_cache_plans_every_enabled_key_for_capped_pools() -> None:
    plan = plan_refresh(REGISTRY, POOLS, {}, NOW)
    assert len(plan) == expected_key_count(3) == 1 + 9 * 3
    assert {p.reason for p in plan} == {"missing"}
    assert all(math.isinf(p.staleness) for p in plan)
    pools_seen = {p.request.pool_address for p in plan} - {None}
    assert pools_seen == {p.lower() for p in POOLS[:3]}
    assert len(plan_refresh(REGISTRY, POOLS, {}, NOW, pool_cap=1)) == expected_key_count(1)
    assert [p.key for p in plan_refresh(REGISTRY, POOLS, {}, NOW, pool_cap=0)] == ["gas_regime"]


def test_duplicate_pools_count_once_towards_the_cap() -> None:
    pools = [POOLS[0], POOLS[0].lower(), POOLS[1]]
    plan = plan_refresh(REGISTRY, pools, {}, NOW, pool_cap=3)
    assert len(plan) == expected_key_count(2)


def test_order_is_priority_then_staleness_then_key() -> None:
    plan = plan_refresh(REGISTRY, POOLS[:1], {}, NOW)
    assert [p.priority for p in plan] == sorted(p.priority for p in plan)
    p0 = [p.key for p in plan if p.priority == "P0"]
    assert p0 == sorted(p0)
    # Make a P2 key very stale and a P0 key slightly stale: P0 still first.
    spec_p0, spec_p2 = REGISTRY.get("pool_health_score"), REGISTRY.get("mev_risk")
    k0 = plan[[p.spec for p in plan].index(spec_p0)].key
    k2 = plan[[p.spec for p in plan].index(spec_p2)].key
    envs = {p.key: envelope(0) for p in plan}
    envs[k0] = envelope(spec_p0.ttl_seconds * 1.1)
    envs[k2] = envelope(spec_p2.max_age_seconds + 1)
    envs["gas_regime"] = envelope(REGISTRY.get("gas_regime").ttl_seconds * 2)
    plan = plan_refresh(REGISTRY, POOLS[:1], envs, NOW)
    assert [p.key for p in plan] == ["gas_regime", k0, k2]
    assert [p.reason for p in plan] == ["stale", "stale", "too_old"]
    assert plan[0].staleness == pytest.approx(2.0)


def test_fresh_keys_are_skipped_and_failures_replanned_unless_fresh() -> None:
    gas_ttl = REGISTRY.get("gas_regime").ttl_seconds
    fresh_failed = plan_refresh(REGISTRY, [], {"gas_regime": envelope(1, ok=False)}, NOW)
    assert fresh_failed == []
    stale_failed = plan_refresh(REGISTRY, [], {"gas_regime": envelope(gas_ttl, ok=False)}, NOW)
    assert [(p.key, p.reason) for p in stale_failed] == [("gas_regime", "stale")]
    no_data_failed = plan_refresh(REGISTRY, [], {"gas_regime": envelope(None, ok=False)}, NOW)
    assert [(p.key, p.reason) for p in no_data_failed] == [("gas_regime", "missing")]


def test_priority_filter() -> None:
    plan = plan_refresh(REGISTRY, POOLS, {}, NOW, priorities={"P2"})
    assert {p.spec.name for p in plan} == {"mev_risk", "toxic_flow", "jit_monitor"}
    assert len(plan) == expected_key_count(3, {"P2"})
    with pytest.raises(ValueError, match="unknown priority 'P7'"):
        plan_refresh(REGISTRY, POOLS, {}, NOW, priorities={"P7"})


def test_disabled_queries_are_not_planned_unless_enabled() -> None:
    assert "pool_swaps" not in {p.spec.name for p in plan_refresh(REGISTRY, POOLS, {}, NOW)}
    registry = load_registry(enable=["pool_swaps"])
    plan = plan_refresh(registry, POOLS[:1], {}, NOW)
    swaps = sorted(p.request.window or "" for p in plan if p.spec.name == "pool_swaps")
    assert swaps == ["1h", "24h", "6h"]


def test_fetch_requests_carry_pool_and_window_parameters() -> None:
    plan = plan_refresh(REGISTRY, POOLS[:1], {}, NOW)
    by_name = {p.spec.name: p.request for p in plan}
    gas, depth = by_name["gas_regime"], by_name["liquidity_depth"]
    assert (gas.pool_address, gas.window, dict(gas.parameters)) == (None, None, {})
    # Shipped SQL is bound from pool_address/window by scheduler.shipped_sql, not by Dune.
    assert (depth.pool_address, depth.window, dict(depth.parameters)) == (
        POOLS[0].lower(),
        "1h",
        {},
    )
    assert depth.key == f"liquidity_depth:{POOLS[0].lower()}:1h"
    assert (depth.query_id, depth.method) == (None, "sql")


def test_saved_queries_get_dune_parameters(tmp_path: Path) -> None:
    path = tmp_path / "ops.toml"
    path.write_text(
        "[queries.depth]\nmethod = 'execute'\nquery_id = 42\nscope = 'pool'\npriority = 'P1'\n"
        "ttl_seconds = 60\nmax_age_seconds = 600\nenabled = true\nwindows = ['6h']\n"
        "parameters = {chain = 'ethereum'}\n"
    )
    plan = plan_refresh(load_registry(path), POOLS[:1], {}, NOW)
    assert [dict(p.request.parameters) for p in plan] == [
        {"chain": "ethereum", "pool_address": POOLS[0].lower(), "lookback": "6h"}
    ]
    assert plan[0].request.query_id == 42


def test_a_latest_result_fetched_within_the_ttl_is_not_refetched_even_if_old() -> None:
    key = "gas_regime"
    old = Envelope(
        ok=True,
        data={"rows": [], "partial": False},
        fetched_at=utc_iso(NOW - timedelta(seconds=10)),
        asof=utc_iso(NOW - timedelta(days=2)),
        ttl_s=300,
        error=None,
        source="dune_latest",
        attempted_at=utc_iso(NOW - timedelta(seconds=10)),
    )
    assert key not in {p.key for p in plan_refresh(REGISTRY, [], {key: old}, NOW)}
    later = NOW + timedelta(seconds=REGISTRY.get(key).ttl_seconds)
    due = {p.key: p.reason for p in plan_refresh(REGISTRY, [], {key: old}, later)}
    assert due[key] == "too_old"


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="bad pool address"):
        plan_refresh(REGISTRY, ["0x12"], {}, NOW)
    with pytest.raises(ValueError, match="pool_cap"):
        plan_refresh(REGISTRY, POOLS, {}, NOW, pool_cap=-1)


def test_keys_for_pool_and_forced_trigger_plan() -> None:
    keys = keys_for_pool(REGISTRY, POOLS[0])
    names = [k.split(":")[0] for k in keys]
    assert sorted(names) == sorted(
        [
            "gas_regime",
            "pool_health_score",
            "rebalance_hint",
            "dynamic_fee_analysis",
            "fee_tier_opt",
            "liquidity_depth",
            "liquidity_competition",
        ]
    )
    envs: dict[str, Envelope | None] = {k: envelope(0) for k in keys}
    forced = plan_pool_refresh(REGISTRY, POOLS[0], envs, NOW)
    assert sorted(p.key for p in forced) == sorted(keys)
    assert {p.reason for p in forced} == {"forced"}
    assert plan_pool_refresh(REGISTRY, POOLS[0], envs, NOW, force=False) == []
    assert keys_for_pool(REGISTRY, POOLS[0], {"P2"}) == [
        k for k in (r.key for _, r in candidate_requests(REGISTRY, POOLS[:1], priorities={"P2"}))
    ]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_plan_is_exactly_the_non_fresh_keys_in_order(data: st.DataObject) -> None:
    candidates = candidate_requests(REGISTRY, POOLS[:2])
    envs: dict[str, Envelope | None] = {}
    fresh: set[str] = set()
    for spec, req in candidates:
        age = data.draw(
            st.one_of(st.none(), st.floats(min_value=0, max_value=spec.max_age_seconds * 2))
        )
        envs[req.key] = None if age is None else envelope(age)
        if age is not None and age < spec.ttl_seconds:
            fresh.add(req.key)
    plan = plan_refresh(REGISTRY, POOLS[:2], envs, NOW)
    assert {p.key for p in plan} == {r.key for _, r in candidates} - fresh
    sort_keys = [(PRIORITIES.index(p.priority), -p.staleness, p.key) for p in plan]
    assert sort_keys == sorted(sort_keys)
