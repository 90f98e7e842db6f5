from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.scheduler.registry import (
    RegistryError,
    cache_key,
    format_registry,
    load_registry,
    parse_cache_key,
    window_hours,
)

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"

GOOD_QUERY = """
[queries.{name}]
query_id = 7
method = "execute"
scope = "pool"
priority = "P1"
ttl_seconds = 60
max_age_seconds = 600
enabled = true
windows = ["1h", "24h"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ops.toml"
    path.write_text(text)
    return path


def test_shipped_catalogue_counts_match_the_spec() -> None:
    reg = load_registry()
    assert len(reg) == 25
    assert sum(s.enabled for s in reg) == 10
    assert sum(s.pool_scoped for s in reg) == 13
    groups = {p: [s.name for s in specs] for p, specs in reg.by_priority().items()}
    assert groups["P0"] == ["gas_regime", "pool_health_score", "rebalance_hint"]
    assert sorted(groups["P1"]) == sorted(
        [
            "dynamic_fee_analysis",
            "fee_tier_opt",
            "liquidity_depth",
            "liquidity_competition",
            "range_efficiency",
        ]
    )
    assert sorted(groups["P2"]) == ["jit_monitor", "mev_risk", "toxic_flow"]
    assert len(groups["P3"]) == 14
    enabled = {s.name for s in reg.enabled()}
    assert enabled == set(groups["P0"] + groups["P2"]) | (set(groups["P1"]) - {"range_efficiency"})


def test_shipped_catalogue_details() -> None:
    reg = load_registry()
    gas = reg.get("gas_regime")
    assert (gas.scope, gas.ttl_seconds, gas.windows) == ("global", 300, ())
    assert reg.get("pool_metrics").windows == ("6h", "24h")
    assert reg.get("pool_swaps").windows == ("1h", "6h", "24h")
    for spec in reg:
        assert spec.max_age_seconds > spec.ttl_seconds
        assert spec.enabled == spec.enabled_default
        assert bool(spec.windows) == spec.pool_scoped
        if spec.priority == "P3":
            assert not spec.enabled
    # Out of the box every query runs its shipped SQL: no saved query ids to supply.
    assert all(s.method == "sql" and s.query_id is None for s in reg)
    assert all(s.description for s in reg)


def test_saved_query_methods_need_an_id_and_sql_takes_none(tmp_path: Path) -> None:
    no_id = GOOD_QUERY.format(name="q").replace("query_id = 7\n", "")
    with pytest.raises(RegistryError, match="field 'query_id': expected a saved Dune query id"):
        load_registry(write(tmp_path, no_id))
    sql_with_id = GOOD_QUERY.format(name="q").replace('method = "execute"', 'method = "sql"')
    with pytest.raises(RegistryError, match="field 'query_id': expected no query_id"):
        load_registry(write(tmp_path, sql_with_id))
    reexec = GOOD_QUERY.format(name="q") + "reexecute_after_seconds = 30\n"
    with pytest.raises(RegistryError, match="field 'reexecute_after_seconds': expected only"):
        load_registry(write(tmp_path, reexec))
    latest = reexec.replace('method = "execute"', 'method = "latest"')
    assert load_registry(write(tmp_path, latest)).get("q").reexecute_after_seconds == 30


def test_enable_and_disable_overrides() -> None:
    reg = load_registry(enable=["range_efficiency", "pool_swaps"], disable=["gas_regime"])
    assert reg.get("range_efficiency").enabled
    assert reg.get("pool_swaps").enabled and not reg.get("pool_swaps").enabled_default
    assert not reg.get("gas_regime").enabled and reg.get("gas_regime").enabled_default
    assert sum(s.enabled for s in reg) == 11


@pytest.mark.parametrize(
    ("enable", "disable", "fragment"),
    [
        (["nope"], [], "enable override names unknown query 'nope'"),
        ([], ["nada"], "disable override names unknown query 'nada'"),
        (["gas_regime"], ["gas_regime"], "'gas_regime' is both enabled and disabled"),
    ],
)
def test_bad_overrides_are_errors(enable: list[str], disable: list[str], fragment: str) -> None:
    with pytest.raises(RegistryError, match=fragment):
        load_registry(enable=enable, disable=disable)


def test_operator_file_is_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_QUERY.format(name="my_query"))
    reg = load_registry(path)
    spec = reg.get("my_query")
    assert (spec.query_id, spec.windows, reg.source) == (7, ("1h", "24h"), str(path))


@pytest.mark.parametrize(
    ("old", "new", "field", "got"),
    [
        ("ttl_seconds = 60", "ttl_seconds = -5", "ttl_seconds", "-5"),
        ("query_id = 7", 'query_id = "7"', "query_id", "'7'"),
        ('method = "execute"', 'method = "run"', "method", "'run'"),
        ('scope = "pool"', 'scope = "chain"', "scope", "'chain'"),
        ('priority = "P1"', 'priority = "P9"', "priority", "'P9'"),
        ("max_age_seconds = 600", "max_age_seconds = 60", "max_age_seconds", "60"),
        ("enabled = true", 'enabled = "yes"', "enabled", "'yes'"),
        ('windows = ["1h", "24h"]', 'windows = ["1 hour"]', "windows", "['1 hour']"),
        ('windows = ["1h", "24h"]', "windows = []", "windows", "[]"),
        ("enabled = true", "", "enabled", "nothing (field missing)"),
        ("enabled = true", "enabled = true\nttl = 5", "ttl", None),
        ("enabled = true", "enabled = true\nparameters = {lookback = '1h'}", "parameters", None),
    ],
)
def test_validation_errors_are_one_line_naming_query_field_value(
    tmp_path: Path, old: str, new: str, field: str, got: str | None
) -> None:
    text = GOOD_QUERY.format(name="bad_one").replace(old, new)
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: query 'bad_one' field '{field}'")
    if got is not None:
        assert message.endswith(f"got {got}")


def test_exact_message_for_a_negative_ttl_in_the_shipped_format(tmp_path: Path) -> None:
    text = GOOD_QUERY.format(name="gas_regime").replace("ttl_seconds = 60", "ttl_seconds = -5")
    path = tmp_path / "queries.toml"
    path.write_text(text)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert str(info.value) == (
        f"{path}: query 'gas_regime' field 'ttl_seconds': expected a positive integer, got -5"
    )


def test_global_query_with_windows_is_rejected(tmp_path: Path) -> None:
    text = GOOD_QUERY.format(name="g").replace('scope = "pool"', 'scope = "global"')
    with pytest.raises(RegistryError, match="query 'g' field 'windows'"):
        load_registry(write(tmp_path, text))


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as info:
        load_registry(write(tmp_path, "[queries.x\nquery_id = "))
    assert "invalid TOML" in str(info.value) and "\n" not in str(info.value)


def test_unreadable_file_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "absent.toml")


def test_cache_keys() -> None:
    reg = load_registry()
    assert cache_key(reg.get("gas_regime")) == "gas_regime"
    key = cache_key(reg.get("pool_swaps"), POOL, "6h")
    assert key == f"pool_swaps:{POOL.lower()}:6h"
    assert parse_cache_key(key) == ("pool_swaps", POOL.lower(), "6h")
    assert parse_cache_key("gas_regime") == ("gas_regime", None, None)
    with pytest.raises(ValueError):
        cache_key(reg.get("gas_regime"), POOL, "1h")
    with pytest.raises(ValueError):
        cache_key(reg.get("pool_swaps"), POOL, "2h")
    with pytest.raises(ValueError):
        cache_key(reg.get("pool_swaps"), "0x1234", "6h")
    for bad in ("", "a:b", "pool_swaps:0x12:1h", "Gas", f"pool_swaps:{POOL}:1 h"):
        with pytest.raises(ValueError):
            parse_cache_key(bad)


@given(
    address=st.text("0123456789abcdefABCDEF", min_size=40, max_size=40),
    window=st.sampled_from(["1h", "6h", "24h"]),
)
def test_cache_key_round_trips(address: str, window: str) -> None:
    spec = load_registry().get("pool_swaps")
    key = cache_key(spec, "0x" + address, window)
    assert parse_cache_key(key) == ("pool_swaps", "0x" + address.lower(), window)


def test_window_hours() -> None:
    assert [window_hours(w) for w in ("1h", "6h", "24h", "7d")] == [1, 6, 24, 168]
    for bad in ("0h", "1w", "h", "1.5h"):
        with pytest.raises(ValueError):
            window_hours(bad)


def test_format_registry_groups_by_priority_with_totals() -> None:
    text = format_registry(load_registry(enable=["pool_swaps"]))
    assert text.isascii()
    lines = text.splitlines()
    headers = [line for line in lines if line.startswith("P")]
    assert [h.split()[0] for h in headers] == ["P0", "P1", "P2", "P3"]
    assert "P1 (shaping): 5 total, 4 enabled" in headers
    assert "P3 (offline): 14 total, 1 enabled" in headers
    assert any(line.startswith("  [x] gas_regime (global, TTL=300s") for line in lines)
    assert any(line.startswith("  [ ] range_efficiency (pool 24h") for line in lines)
    assert any(line.startswith("  [x] pool_swaps (pool 1h/6h/24h") for line in lines)
    assert lines[-1].startswith("Totals: 25 defined, 11 enabled, 13 pool-scoped")
