"""The query registry: which Dune queries exist, how fresh each must be, and their cache keys.

The shipped catalogue is ``scheduler/queries.toml`` (package data); an operator can load their
own file instead and switch queries on or off with ``enable``/``disable`` overrides. Every
validation problem is a :class:`RegistryError` whose message is one line naming the query, the
field and the bad value.

Cache keys are ``<query>`` for global queries and ``<query>:<pool_address>:<window>`` for
pool-scoped ones, the pool address in lower case.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, cast

Priority = Literal["P0", "P1", "P2", "P3"]
Method = Literal["execute", "latest"]
Scope = Literal["global", "pool"]

PRIORITIES: tuple[Priority, ...] = ("P0", "P1", "P2", "P3")
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
_FIELDS = frozenset(
    {
        "query_id",
        "method",
        "scope",
        "priority",
        "ttl_seconds",
        "max_age_seconds",
        "enabled",
        "windows",
        "parameters",
        "description",
    }
)


class RegistryError(ValueError):
    """A registry file or override is invalid; the message is a single line."""


@dataclass(frozen=True)
class QuerySpec:
    """One Dune query as the scheduler sees it.

    ``enabled_default`` is what the file says; ``enabled`` is the effective value after the
    operator's overrides. ``windows`` is empty for global queries.
    """

    name: str
    query_id: int
    method: Method
    scope: Scope
    priority: Priority
    ttl_seconds: int
    max_age_seconds: int
    enabled: bool
    enabled_default: bool
    windows: tuple[str, ...] = ()
    parameters: Mapping[str, str | int | float] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    description: str = ""

    @property
    def pool_scoped(self) -> bool:
        return self.scope == "pool"


@dataclass(frozen=True)
class Registry:
    """The loaded catalogue, in file order."""

    queries: tuple[QuerySpec, ...]
    source: str = DEFAULT_FILE_LABEL

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
    def bad(field_name: str, expected: str, value: Any) -> RegistryError:
        got = "nothing (field missing)" if value is _MISSING else repr(value)
        return RegistryError(
            f"{label}: query {name!r} field {field_name!r}: expected {expected}, got {got}"
        )

    if not _NAME_RE.match(name):
        raise RegistryError(
            f"{label}: query {name!r}: name must be lower-case letters, digits and underscores"
        )
    if not isinstance(body, dict):
        raise RegistryError(f"{label}: query {name!r}: expected a table, got {body!r}")
    extra = sorted(set(body) - _FIELDS)
    if extra:
        raise RegistryError(f"{label}: query {name!r} field {extra[0]!r}: unknown field")

    def positive_int(field_name: str) -> int:
        value = body.get(field_name, _MISSING)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise bad(field_name, "a positive integer", value)
        return value

    def choice(field_name: str, options: tuple[str, ...]) -> str:
        value = body.get(field_name, _MISSING)
        if value not in options:
            raise bad(field_name, "one of " + ", ".join(repr(o) for o in options), value)
        return cast(str, value)

    query_id = positive_int("query_id")
    method = cast(Method, choice("method", ("execute", "latest")))
    scope = cast(Scope, choice("scope", ("global", "pool")))
    priority = cast(Priority, choice("priority", PRIORITIES))
    ttl = positive_int("ttl_seconds")
    max_age = positive_int("max_age_seconds")
    if max_age <= ttl:
        raise bad("max_age_seconds", f"more than ttl_seconds ({ttl})", max_age)
    enabled = body.get("enabled", _MISSING)
    if not isinstance(enabled, bool):
        raise bad("enabled", "true or false", enabled)

    windows = body.get("windows", [])
    if scope == "global":
        if windows != []:
            raise bad("windows", "no windows for a global query", windows)
    elif (
        not isinstance(windows, list)
        or not windows
        or not all(isinstance(w, str) and _WINDOW_RE.match(w) for w in windows)
        or len(set(windows)) != len(windows)
    ):
        raise bad("windows", "a non-empty list of distinct windows like '1h', '24h'", windows)

    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict) or not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in parameters.values()
    ):
        raise bad("parameters", "a table of strings and numbers", parameters)
    reserved = sorted({"pool_address", "lookback"} & set(parameters))
    if reserved:
        raise bad("parameters", "no 'pool_address' or 'lookback' (added per key)", parameters)
    description = body.get("description", "")
    if not isinstance(description, str):
        raise bad("description", "a string", description)

    return QuerySpec(
        name=name,
        query_id=query_id,
        method=method,
        scope=scope,
        priority=priority,
        ttl_seconds=ttl,
        max_age_seconds=max_age,
        enabled=enabled,
        enabled_default=enabled,
        windows=tuple(windows),
        parameters=MappingProxyType(dict(parameters)),
        description=description,
    )


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
            spec = replace(spec, enabled=spec.name in on)
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
            lines.append(
                f"  {mark} {spec.name} ({scope}, TTL={spec.ttl_seconds}s, "
                f"max_age={spec.max_age_seconds}s, {spec.method}, id={spec.query_id})"
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
