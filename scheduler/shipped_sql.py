"""The DuneSQL shipped with clmmd (``scheduler/queries/<name>.sql``) and its safe binding.

Dune's Execute SQL endpoint takes no parameters, so values are written into the SQL text here,
and only here. Each query declares its parameters with a kind; a value is accepted only in the
form its kind allows and rendered as a typed literal, never as text taken from a trigger or a
configuration file:

============  ===========================================  ================================
kind          accepted value                               rendered as
============  ===========================================  ================================
address       ``0x`` + 40 hex digits (lower-cased)         ``0x…`` (a varbinary literal)
window        one of ``1h``, ``6h``, ``24h``, ``7d``        ``INTERVAL '24' HOUR``; the
                                                           placeholder ``{{<name>_hours}}``
                                                           gets the hours as an integer
timestamp     a timezone-aware ``datetime``                ``TIMESTAMP '2024-05-01 00:00:00
              (or ISO-8601 text with a zone)               UTC'``
============  ===========================================  ================================

Placeholders are written ``{{name}}`` as in Dune's editor. After binding, no placeholder may be
left and the text must parse as Trino SQL (sqlglot): a query that would fail on Dune, and may
still cost credits, is refused before it is sent.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Literal

import sqlglot
from sqlglot.errors import ParseError

from clmmd.scheduler.query_rows import ROW_MODELS, QueryRow
from clmmd.scheduler.registry import WINDOWS, is_pool_address, window_hours

ParamKind = Literal["address", "window", "timestamp"]
BindValue = str | datetime

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_POOL_WINDOW: dict[str, ParamKind] = {"pool_address": "address", "lookback": "window"}
_POOL_RANGE: dict[str, ParamKind] = {
    "pool_address": "address",
    "start_time": "timestamp",
    "end_time": "timestamp",
}


class QueryParameterError(ValueError):
    """A parameter value was refused; the message is one line naming the query and parameter."""


@dataclass(frozen=True)
class ShippedQuery:
    """One shipped query: its SQL file, declared parameters and row model."""

    name: str
    params: Mapping[str, ParamKind] = field(default_factory=dict)

    @property
    def sql_file(self) -> str:
        """Path of the SQL file relative to the repository root."""
        return f"scheduler/queries/{self.name}.sql"

    @property
    def row_model(self) -> type[QueryRow]:
        return ROW_MODELS[self.name]

    @property
    def sql(self) -> str:
        """The SQL text with its ``{{placeholders}}``."""
        return _read_sql(self.name)

    def bind(self, values: Mapping[str, BindValue]) -> str:
        """The SQL with every declared parameter rendered from ``values``.

        Raises :class:`QueryParameterError` for a missing, unknown or malformed value, and when
        the bound text does not parse as Trino SQL.
        """
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise QueryParameterError(f"{self.name}: unknown parameter {unknown[0]!r}")
        rendered: dict[str, str] = {}
        for name, kind in self.params.items():
            if name not in values:
                raise QueryParameterError(f"{self.name}: parameter {name!r} is missing")
            rendered.update(_render(self.name, name, kind, values[name]))
        return bind_text(self.name, self.sql, rendered)


#: Every shipped query by name: pool-scoped ones take the pool and a window (``pool_swaps`` an
#: explicit time range), global ones nothing.
SHIPPED: Mapping[str, ShippedQuery] = {
    name: ShippedQuery(name, params)
    for name, params in {
        "gas_regime": {},
        "pool_health_score": _POOL_WINDOW,
        "rebalance_hint": _POOL_WINDOW,
        "dynamic_fee_analysis": _POOL_WINDOW,
        "fee_tier_opt": _POOL_WINDOW,
        "liquidity_depth": _POOL_WINDOW,
        "liquidity_competition": _POOL_WINDOW,
        "range_efficiency": _POOL_WINDOW,
        "mev_risk": _POOL_WINDOW,
        "toxic_flow": _POOL_WINDOW,
        "jit_monitor": _POOL_WINDOW,
        "pool_metrics": _POOL_WINDOW,
        "pool_swaps": _POOL_RANGE,
        "il_tracker": _POOL_WINDOW,
        "liquidity_migration": {},
        "pair_correlation": {},
        "lp_cohort_returns": {},
        "fee_revenue_leaderboard": {},
        "whale_positions": {},
        "stablecoin_flows": {},
        "staking_flows": {},
        "bridge_flows": {},
        "cex_dex_spread": {},
        "volatility_surface": {},
        "regime_history": {},
    }.items()
}


def shipped_query(name: str) -> ShippedQuery:
    """The shipped query ``name``; :class:`QueryParameterError` naming it if there is none."""
    try:
        return SHIPPED[name]
    except KeyError:
        raise QueryParameterError(f"no shipped SQL for query {name!r}") from None


def bind_for_key(name: str, pool_address: str | None, window: str | None, now: datetime) -> str:
    """The bound SQL of one cache key: the pool and window of a pool-scoped key.

    A query that takes an explicit time range (``pool_swaps``) gets ``[now - window, now)``,
    ``now`` truncated to the minute so retries within a minute send the same SQL.
    """
    query = shipped_query(name)
    values: dict[str, BindValue] = {}
    if "pool_address" in query.params:
        values["pool_address"] = pool_address or ""
    if "lookback" in query.params:
        values["lookback"] = window or ""
    if "start_time" in query.params:
        if window is None:
            raise QueryParameterError(f"{name}: a window is needed to derive start_time")
        end = now.astimezone(UTC).replace(second=0, microsecond=0)
        values["end_time"] = end
        values["start_time"] = end - timedelta(hours=window_hours(window))
    return query.bind(values)


def bind_text(label: str, sql: str, rendered: Mapping[str, str]) -> str:
    """Replace ``{{name}}`` placeholders by already-rendered literals; check the result.

    Every placeholder in ``sql`` must have a literal, and the result must parse as Trino SQL.
    """
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(sql)} - set(rendered))
    if missing:
        raise QueryParameterError(f"{label}: placeholder {{{{{missing[0]}}}}} has no value")
    bound = _PLACEHOLDER.sub(lambda m: rendered[m.group(1)], sql)
    try:
        sqlglot.parse_one(bound, read="trino")
    except ParseError as exc:
        first = str(exc).splitlines()[0][:200]
        raise QueryParameterError(f"{label}: bound SQL does not parse as Trino: {first}") from None
    return bound


def _render(query: str, name: str, kind: ParamKind, value: BindValue) -> dict[str, str]:
    def refuse(expected: str) -> QueryParameterError:
        return QueryParameterError(
            f"{query}: parameter {name!r}: expected {expected}, got {str(value)[:80]!r}"
        )

    if kind == "address":
        if not isinstance(value, str) or not is_pool_address(value):
            raise refuse("0x and 40 hex digits")
        return {name: value.lower()}
    if kind == "window":
        if not isinstance(value, str) or value not in WINDOWS:
            raise refuse("one of " + ", ".join(WINDOWS))
        hours = int(window_hours(value))
        unit = ("DAY", hours // 24) if value.endswith("d") else ("HOUR", hours)
        return {name: f"INTERVAL '{unit[1]}' {unit[0]}", f"{name}_hours": str(hours)}
    moment = _as_utc(value)
    if moment is None:
        raise refuse("a timezone-aware timestamp")
    return {name: f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S')} UTC'"}


def _as_utc(value: BindValue) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is None:
        return None
    return value.astimezone(UTC)


@cache
def _read_sql(name: str) -> str:
    filename = f"{name}.sql"
    try:
        resource = importlib.resources.files("clmmd.scheduler") / "queries" / filename
        return resource.read_text("utf-8")
    except (NotADirectoryError, FileNotFoundError, TypeError):
        # See registry._read_shipped_file: namespace packages on Python 3.11.
        return (Path(__file__).parent / "queries" / filename).read_text("utf-8")


def query_name_of(sql: str) -> str | None:
    """The shipped query a SQL text came from (its ``-- clmmd query: <name>`` first line)."""
    match = re.match(r"\s*-- clmmd query: ([a-z_][a-z0-9_]*)", sql)
    return match.group(1) if match else None
