"""Every shipped SQL file parses as Trino, reads only listed Dune tables and columns, and
selects exactly its row model's columns; binding refuses anything but well-formed values."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify

from clmmd.scheduler.query_rows import ROW_MODELS, columns
from clmmd.scheduler.registry import load_registry
from clmmd.scheduler.shipped_sql import (
    SHIPPED,
    QueryParameterError,
    bind_for_key,
    query_name_of,
    shipped_query,
)

POOL = "0x88E6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
NOW = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)
QUERIES_DIR = Path(__file__).parents[2] / "scheduler" / "queries"
TABLES = tomllib.loads((QUERIES_DIR / "dune_tables.toml").read_text())["tables"]


def bound(name: str) -> str:
    spec = load_registry().get(name)
    window = spec.windows[0] if spec.pool_scoped else None
    return bind_for_key(name, POOL if spec.pool_scoped else None, window, NOW)


def dune_schema() -> dict[str, dict[str, dict[str, str]]]:
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for full_name, table in TABLES.items():
        db, name = full_name.split(".")
        # Trino folds unquoted identifiers to lower case; the catalogue keeps Dune's spelling.
        schema.setdefault(db.lower(), {})[name.lower()] = {
            column.lower(): "VARCHAR" for column in table["columns"]
        }
    return schema


def test_every_registry_entry_has_sql_a_row_model_and_nothing_else() -> None:
    names = {spec.name for spec in load_registry()}
    assert names == set(SHIPPED) == set(ROW_MODELS)
    assert {p.stem for p in QUERIES_DIR.glob("*.sql")} == names
    pooled = {spec.name for spec in load_registry() if spec.pool_scoped}
    assert len(pooled) == 13
    assert {n for n, q in SHIPPED.items() if "pool_address" in q.params} == pooled


def test_every_table_in_the_catalogue_cites_its_source() -> None:
    for name, table in TABLES.items():
        assert table["source"].strip(), name
        assert table["columns"], name


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_sql_parses_as_trino_and_reads_only_listed_tables_and_columns(name: str) -> None:
    sql = bound(name)
    assert query_name_of(sql) == name
    tree = sqlglot.parse_one(sql, read="trino")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    read = {
        f"{t.db}.{t.name}".lower()
        for t in tree.find_all(exp.Table)
        if t.db or t.name.lower() not in ctes
    }
    listed = {t.lower() for t in TABLES}
    assert read, f"{name} reads no table"
    assert read <= listed, f"{name} reads unlisted tables {sorted(read - listed)}"
    # qualify() resolves every column against the catalogue and raises for an unknown one.
    qualify(tree, schema=dune_schema(), dialect="trino", validate_qualify_columns=True)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_sql_selects_exactly_the_row_model_columns(name: str) -> None:
    tree = sqlglot.parse_one(bound(name), read="trino")
    assert isinstance(tree, exp.Select)
    selected = [projection.alias_or_name for projection in tree.expressions]
    assert selected == list(columns(name)), name


def test_an_unlisted_column_is_caught() -> None:
    sql = "SELECT no_such_column FROM dex.trades"
    with pytest.raises(sqlglot.errors.OptimizeError):
        qualify(
            sqlglot.parse_one(sql, read="trino"),
            schema=dune_schema(),
            dialect="trino",
            validate_qualify_columns=True,
        )


def test_binding_renders_typed_literals() -> None:
    sql = bind_for_key("pool_health_score", POOL, "24h", NOW)
    assert "{{" not in sql
    assert POOL.lower() in sql and POOL not in sql
    assert "now() - INTERVAL '24' HOUR" in sql
    assert "* 24 / 24)" in sql  # {{lookback_hours}}
    seven = bind_for_key("pool_metrics", POOL, "24h", NOW)
    assert "INTERVAL '24' HOUR" in seven


def test_pool_swaps_takes_explicit_start_and_end() -> None:
    query = shipped_query("pool_swaps")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    sql = query.bind(
        {"pool_address": POOL, "start_time": start, "end_time": start + timedelta(days=31)}
    )
    assert "evt_block_time >= TIMESTAMP '2025-01-01 00:00:00 UTC'" in sql
    assert "evt_block_time < TIMESTAMP '2025-02-01 00:00:00 UTC'" in sql
    assert sql.rstrip().endswith("ORDER BY evt_block_number, evt_index")
    from_key = bind_for_key("pool_swaps", POOL, "6h", NOW)
    assert "TIMESTAMP '2026-03-01 06:34:00 UTC'" in from_key
    assert "TIMESTAMP '2026-03-01 12:34:00 UTC'" in from_key


@pytest.mark.parametrize(
    ("name", "values", "fragment"),
    [
        ("pool_metrics", {"pool_address": "0x12", "lookback": "24h"}, "'pool_address': expected"),
        (
            "pool_metrics",
            {"pool_address": POOL + "'; DROP TABLE x; --", "lookback": "24h"},
            "'pool_address': expected",
        ),
        ("pool_metrics", {"pool_address": POOL, "lookback": "2h"}, "'lookback': expected one of"),
        (
            "pool_metrics",
            {"pool_address": POOL, "lookback": "1' HOUR) OR (1=1"},
            "'lookback': expected one of",
        ),
        ("pool_metrics", {"pool_address": POOL}, "'lookback' is missing"),
        (
            "pool_metrics",
            {"pool_address": POOL, "lookback": "1h", "x": "1"},
            "unknown parameter 'x'",
        ),
        (
            "pool_swaps",
            {"pool_address": POOL, "start_time": "yesterday", "end_time": NOW},
            "'start_time': expected a timezone-aware timestamp",
        ),
        (
            "pool_swaps",
            {"pool_address": POOL, "start_time": datetime(2025, 1, 1), "end_time": NOW},
            "'start_time': expected a timezone-aware timestamp",
        ),
    ],
)
def test_binding_refuses_bad_values(name: str, values: dict[str, Any], fragment: str) -> None:
    with pytest.raises(QueryParameterError, match=fragment) as info:
        shipped_query(name).bind(values)
    assert "\n" not in str(info.value)
