"""The query registry: which Dune queries exist, how fresh each must be, and their cache keys.

The shipped catalogue is ``scheduler/queries.toml`` (package data); an operator can load their
own file instead and switch queries on or off with ``enable``/``disable`` overrides. Each entry
is validated by a pydantic model (:class:`QueryEntry`); every problem becomes a
:class:`RegistryError` whose message is one line naming the query, the field and the bad value.

Methods: ``sql`` (the default) runs the query's DuneSQL shipped in ``scheduler/queries/`` through
Dune's Execute SQL endpoint; ``execute`` runs a saved Dune query (``query_id``, the operator's)
then reads its results; ``latest`` reads the saved query's latest results, optionally
re-executing it when they are older than ``reexecute_after_seconds``.

Cache keys are ``<query>`` for global queries and ``<query>:<pool_address>:<window>`` for
pool-scoped ones, the pool address in lower case.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

Priority = Literal["P0", "P1", "P2", "P3"]
Method = Literal["sql", "execute", "latest"]
Scope = Literal["global", "pool"]
Window = Literal["1h", "6h", "24h", "7d"]

PRIORITIES: tuple[Priority, ...] = ("P0", "P1", "P2", "P3")
#: The lookback windows a pool-scoped query may use (an enum: they are bound into SQL).
WINDOWS: tuple[Window, ...] = ("1h", "6h", "24h", "7d")
PRIORITY_LABELS: Mapping[str, str] = {
    "P0": "gating",
    "P1": "shaping",
    "P2": "risk",
    "P3": "offline",
}
DEFAULT_FILE_LABEL = "queries.toml"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_WINDOW_RE = re.compile(r"^([1-9][0-9]*)([hd])$")
_POOL_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_RESERVED_PARAMETERS = frozenset({"pool_address", "lookback", "start_time", "end_time"})

ParamValue = StrictStr | StrictInt | StrictFloat


class RegistryError(ValueError):
    """A registry file or override is invalid; the message is a single line."""


class QuerySpec(BaseModel):
    """One Dune query as the scheduler sees it (validated from one ``[queries.<name>]`` table).

    ``enabled_default`` is what the file says; ``enabled`` is the effective value after the
    operator's overrides. ``windows`` is empty for global queries. ``query_id`` is set only for
    the saved-query methods (``execute``, ``latest``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: str
    method: Method = "sql"
    query_id: StrictInt | None = Field(default=None, gt=0)
    scope: Scope
    priority: Priority
    ttl_seconds: StrictInt = Field(gt=0)
    max_age_seconds: StrictInt = Field(gt=0)
    reexecute_after_seconds: StrictInt | None = Field(default=None, gt=0)
    enabled: StrictBool
    enabled_default: StrictBool
    windows: tuple[Window, ...] = ()
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    description: str = ""

    @property
    def pool_scoped(self) -> bool:
        return self.scope == "pool"

    @property
    def runs_shipped_sql(self) -> bool:
        return self.method == "sql"


class QueryEntry(BaseModel):
    """The TOML shape of one entry, before overrides (field errors name the TOML field)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    method: Method = "sql"
    query_id: StrictInt | None = None
    scope: Scope
    priority: Priority
    ttl_seconds: StrictInt
    max_age_seconds: StrictInt
    reexecute_after_seconds: StrictInt | None = None
    enabled: StrictBool
    windows: list[StrictStr] = Field(default_factory=list)
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    description: StrictStr = ""

    @model_validator(mode="after")
    def _consistent(self) -> QueryEntry:
        # Each rule raises _FieldProblem so the message names the field the operator must fix.
        for name in ("ttl_seconds", "max_age_seconds", "reexecute_after_seconds", "query_id"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise _FieldProblem(name, "a positive integer", value)
        if self.max_age_seconds <= self.ttl_seconds:
            raise _FieldProblem(
                "max_age_seconds",
                f"more than ttl_seconds ({self.ttl_seconds})",
                self.max_age_seconds,
            )
        if self.method == "sql" and self.query_id is not None:
            raise _FieldProblem("query_id", "no query_id with method 'sql'", self.query_id)
        if self.method != "sql" and self.query_id is None:
            raise _FieldProblem(
                "query_id", f"a saved Dune query id with method {self.method!r}", _MISSING
            )
        if self.reexecute_after_seconds is not None and self.method != "latest":
            raise _FieldProblem(
                "reexecute_after_seconds", "only with method 'latest'", self.reexecute_after_seconds
            )
        if self.scope == "global" and self.windows:
            raise _FieldProblem("windows", "no windows for a global query", self.windows)
        if self.scope == "pool" and (
            not self.windows
            or any(w not in WINDOWS for w in self.windows)
            or len(set(self.windows)) != len(self.windows)
        ):
            raise _FieldProblem(
                "windows",
                f"a non-empty list of distinct windows from {list(WINDOWS)}",
                self.windows,
            )
        if self.parameters and self.method == "sql":
            raise _FieldProblem(
                "parameters",
                "no extra parameters with method 'sql' (nothing binds them)",
                self.parameters,
            )
        reserved = sorted(_RESERVED_PARAMETERS & set(self.parameters))
        if reserved:
            raise _FieldProblem(
                "parameters", f"no {reserved[0]!r} (added per key)", self.parameters
            )
        return self


class _FieldProblem(ValueError):
    """Raised inside validation: one field, what was expected and what was given."""

    def __init__(self, field_name: str, expected: str, value: Any) -> None:
        super().__init__(f"{field_name}: {expected}")
        self.field_name = field_name
        self.expected = expected
        self.value = value


class Registry:
    """The loaded catalogue, in file order."""

    def __init__(self, queries: Iterable[QuerySpec], source: str = DEFAULT_FILE_LABEL) -> None:
        self.queries: tuple[QuerySpec, ...] = tuple(queries)
        self.source = source

    def __iter__(self) -> Iterator[QuerySpec]:
        return iter(self.queries)

    def __len__(self) -> int:
        return len(self.queries)

    def __contains__(self, name: object) -> bool:
        return any(spec.name == name for spec in self.queries)

    def get(self, name: str) -> QuerySpec:
        """The query called ``name``; ``KeyError`` naming it otherwise."""
        for spec in self.queries:
            if spec.name == name:
                return spec
        raise KeyError(f"unknown query {name!r}")

    def enabled(self, priorities: Iterable[str] | None = None) -> list[QuerySpec]:
        """Enabled queries, optionally only those of the given priorities."""
        wanted = set(PRIORITIES if priorities is None else priorities)
        return [s for s in self.queries if s.enabled and s.priority in wanted]

    def by_priority(self) -> dict[Priority, list[QuerySpec]]:
        grouped: dict[Priority, list[QuerySpec]] = {p: [] for p in PRIORITIES}
        for spec in self.queries:
            grouped[spec.priority].append(spec)
        return grouped


class CacheKey(NamedTuple):
    """A cache key taken apart."""

    query: str
    pool_address: str | None
    window: str | None


def window_hours(window: str) -> float:
    """``"6h"`` → 6.0, ``"7d"`` → 168.0; ``ValueError`` for anything else."""
    match = _WINDOW_RE.match(window)
    if match is None:
        raise ValueError(f"bad window {window!r}: expected e.g. '1h', '24h' or '7d'")
    amount = int(match.group(1))
    return float(amount * 24 if match.group(2) == "d" else amount)


def is_pool_address(text: str) -> bool:
    """``0x`` followed by 40 hex digits (any case)."""
    return bool(_POOL_RE.match(text))


def cache_key(spec: QuerySpec, pool_address: str | None = None, window: str | None = None) -> str:
    """The cache key of ``spec`` (for a pool and window when it is pool-scoped)."""
    if not spec.pool_scoped:
        if pool_address is not None or window is not None:
            raise ValueError(f"query {spec.name!r} is global: no pool or window in its key")
        return spec.name
    if pool_address is None or not is_pool_address(pool_address):
        raise ValueError(f"query {spec.name!r} needs a pool address, got {pool_address!r}")
    if window not in spec.windows:
        raise ValueError(f"query {spec.name!r} has windows {list(spec.windows)}, got {window!r}")
    return f"{spec.name}:{pool_address.lower()}:{window}"


def parse_cache_key(key: str) -> CacheKey:
    """Inverse of :func:`cache_key`; ``ValueError`` for a malformed key."""
    parts = key.split(":")
    if len(parts) == 1 and _NAME_RE.match(parts[0]):
        return CacheKey(parts[0], None, None)
    if (
        len(parts) == 3
        and _NAME_RE.match(parts[0])
        and is_pool_address(parts[1])
        and _WINDOW_RE.match(parts[2])
    ):
        return CacheKey(parts[0], parts[1].lower(), parts[2])
    raise ValueError(f"malformed cache key {key!r}")


def load_registry(
    path: Path | None = None,
    *,
    enable: Iterable[str] = (),
    disable: Iterable[str] = (),
) -> Registry:
    """Load the shipped catalogue (``path=None``) or an operator's TOML file.

    ``enable``/``disable`` switch queries on or off over the file's defaults; naming an
    unknown query, or the same query in both, is a :class:`RegistryError`.
    """
    if path is None:
        label, text = DEFAULT_FILE_LABEL, _read_shipped_file()
    else:
        label = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(f"{label}: cannot read: {exc.strerror or exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{label}: invalid TOML: {exc}") from None
    specs = _parse_document(label, document)
    return Registry(_apply_overrides(label, specs, enable, disable), source=label)


def _read_shipped_file() -> str:
    try:
        return (importlib.resources.files("clmmd.scheduler") / "queries.toml").read_text("utf-8")
    except (NotADirectoryError, FileNotFoundError, TypeError):
        # Without scheduler/__init__.py the package is a namespace package, and
        # importlib.resources on Python 3.11 cannot always read from one (an editable
        # install's path hook is not a directory); the file sits beside this module anyway.
        return Path(__file__).with_name("queries.toml").read_text("utf-8")


def _parse_document(label: str, document: Mapping[str, Any]) -> list[QuerySpec]:
    unknown = sorted(set(document) - {"queries"})
    if unknown:
        raise RegistryError(f"{label}: unknown top-level key {unknown[0]!r} (expected 'queries')")
    queries = document.get("queries")
    if not isinstance(queries, dict) or not queries:
        raise RegistryError(f"{label}: expected a non-empty [queries.<name>] table")
    return [_parse_query(label, name, body) for name, body in queries.items()]


def _parse_query(label: str, name: str, body: Any) -> QuerySpec:
    if not _NAME_RE.match(name):
        raise RegistryError(
            f"{label}: query {name!r}: name must be lower-case letters, digits and underscores"
        )
    if not isinstance(body, dict):
        raise RegistryError(f"{label}: query {name!r}: expected a table, got {body!r}")
    try:
        entry = QueryEntry.model_validate(body)
    except ValidationError as exc:
        raise RegistryError(f"{label}: query {name!r} {_describe(exc, body)}") from None
    return QuerySpec(
        name=name,
        enabled_default=entry.enabled,
        **entry.model_dump(exclude={"windows"}),
        windows=tuple(entry.windows),  # type: ignore[arg-type]  # checked against WINDOWS
    )


def _describe(exc: ValidationError, body: Mapping[str, Any]) -> str:
    """``field 'x': expected ..., got ...`` for the first problem pydantic found."""
    error = exc.errors()[0]
    problem = error.get("ctx", {}).get("error")
    if isinstance(problem, _FieldProblem):
        expected, field_name, value = problem.expected, problem.field_name, problem.value
        return f"field {field_name!r}: expected {expected}, got {_shown(value)}"
    field_name = str(error["loc"][0]) if error["loc"] else "?"
    if error["type"] == "extra_forbidden":
        return f"field {field_name!r}: unknown field"
    value = body.get(field_name, _MISSING)
    expected = _EXPECTED.get(field_name, error["msg"])
    return f"field {field_name!r}: expected {expected}, got {_shown(value)}"


_EXPECTED = {
    "query_id": "a positive integer",
    "ttl_seconds": "a positive integer",
    "max_age_seconds": "a positive integer",
    "reexecute_after_seconds": "a positive integer",
    "method": "one of 'sql', 'execute', 'latest'",
    "scope": "one of 'global', 'pool'",
    "priority": "one of 'P0', 'P1', 'P2', 'P3'",
    "enabled": "true or false",
    "windows": f"a non-empty list of distinct windows from {list(WINDOWS)}",
    "parameters": "a table of strings and numbers",
    "description": "a string",
}


def _shown(value: Any) -> str:
    return "nothing (field missing)" if value is _MISSING else repr(value)


def _apply_overrides(
    label: str, specs: list[QuerySpec], enable: Iterable[str], disable: Iterable[str]
) -> tuple[QuerySpec, ...]:
    on, off = set(enable), set(disable)
    names = {spec.name for spec in specs}
    for kind, wanted in (("enable", on), ("disable", off)):
        unknown = sorted(wanted - names)
        if unknown:
            raise RegistryError(f"{label}: {kind} override names unknown query {unknown[0]!r}")
    both = sorted(on & off)
    if both:
        raise RegistryError(f"{label}: query {both[0]!r} is both enabled and disabled")
    result = []
    for spec in specs:
        if spec.name in on or spec.name in off:
            spec = spec.model_copy(update={"enabled": spec.name in on})
        result.append(spec)
    return tuple(result)


def format_registry(registry: Registry) -> str:
    """The catalogue grouped by priority, one line per query, then the totals."""
    lines: list[str] = []
    for priority, specs in registry.by_priority().items():
        if not specs:
            continue
        enabled = sum(1 for s in specs if s.enabled)
        label = PRIORITY_LABELS[priority]
        lines.append(f"{priority} ({label}): {len(specs)} total, {enabled} enabled")
        for spec in specs:
            mark = "[x]" if spec.enabled else "[ ]"
            scope = f"pool {'/'.join(spec.windows)}" if spec.pool_scoped else "global"
            source = "shipped SQL" if spec.runs_shipped_sql else f"{spec.method} id={spec.query_id}"
            lines.append(
                f"  {mark} {spec.name} ({scope}, TTL={spec.ttl_seconds}s, "
                f"max_age={spec.max_age_seconds}s, {source})"
            )
        lines.append("")
    total = len(registry)
    enabled_total = sum(1 for s in registry if s.enabled)
    pool_total = sum(1 for s in registry if s.pool_scoped)
    lines.append(
        f"Totals: {total} defined, {enabled_total} enabled, {pool_total} pool-scoped"
        f" (source: {registry.source})"
    )
    return "\n".join(lines)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
