"""The intel cache: one JSON envelope per key on disk (diskcache), mirrored in process.

Envelope (stored as orjson bytes)::

    {"ok": bool, "data": {...} | null, "fetched_at": ISO UTC | null, "ttl_s": int,
     "error": str | null, "source": "dune_execute" | "dune_latest" | "mock" | null,
     "attempted_at": ISO UTC}

``data``/``fetched_at``/``source`` describe the last *good* fetch; ``ok``/``error``/
``attempted_at`` describe the last attempt. A failed refresh keeps the last good data
(stale-if-error); a failure with no earlier data stores no data, so the key stays ``missing``.

Freshness is never left to diskcache's ``expire`` (it would delete entries exactly when they
should be served stale): entries only get a long garbage-collection expiry.

Writes are ``async`` and run diskcache in a worker thread (a SQLite write can stall for up to
a second), then update the mirror. Reads are synchronous: from the mirror when the key is known
there, else from disk, so another process (``clmmd status``) sees the daemon's writes. This
module never touches the network.

Corruption. A ``cache.db`` SQLite cannot read (at open, or later: "database disk image is
malformed") is not fatal: the cache folder is moved aside to ``cache.corrupt-<UTC time>``
(warning ``cache_corrupt`` with ``moved_to``), an empty cache takes its place and the operation
is retried once; the mirror keeps serving what this process had read. Intel is refetched.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, TypeVar, cast

import diskcache
import orjson
import structlog

from clmmd.artifacts.base.clock import parse_utc, utc_iso
from clmmd.scheduler.quality import Quality, age_seconds, is_usable, quality
from clmmd.scheduler.source import SourceName

log = structlog.get_logger(__name__)

DEFAULT_SIZE_LIMIT_BYTES = 256 * 1024 * 1024
#: Garbage-collection expiry as a multiple of a key's max_age.
GC_EXPIRY_FACTOR = 7
#: Used when a writer does not say what the key's max_age is.
DEFAULT_GC_EXPIRY_S = 7 * 24 * 3600
_DEDUP_PREFIX = "~dedup:"
_SOURCES = ("dune_execute", "dune_latest", "mock")
_PROBE_KEY = "~probe"
_T = TypeVar("_T")


class Envelope(TypedDict):
    ok: bool
    data: dict[str, Any] | None
    fetched_at: str | None
    ttl_s: int
    error: str | None
    source: SourceName | None
    attempted_at: str


class QualityMeta(TypedDict):
    quality: Quality
    age_s: float | None
    asof: str | None


def decode_envelope(raw: object) -> Envelope:
    """Parse stored bytes into an envelope; ``ValueError`` when they are not one."""
    if not isinstance(raw, bytes | bytearray | memoryview | str):
        raise ValueError(f"stored value is a {type(raw).__name__}, not JSON bytes")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    checks: dict[str, tuple[type, ...]] = {
        "ok": (bool,),
        "data": (dict, type(None)),
        "fetched_at": (str, type(None)),
        "ttl_s": (int,),
        "error": (str, type(None)),
        "source": (str, type(None)),
        "attempted_at": (str,),
    }
    for name, types in checks.items():
        if name not in value or not isinstance(value[name], types):
            raise ValueError(f"field {name!r} missing or of the wrong type")
    if isinstance(value["ttl_s"], bool) or value["ttl_s"] < 0:
        raise ValueError("field 'ttl_s' is not a non-negative integer")
    if value["source"] is not None and value["source"] not in _SOURCES:
        raise ValueError(f"unknown source {value['source']!r}")
    if (value["data"] is None) != (value["fetched_at"] is None):
        raise ValueError("data and fetched_at must be both present or both null")
    for name in ("fetched_at", "attempted_at"):
        if value[name] is not None:
            parse_utc(value[name])  # raises ValueError
    return cast(Envelope, value)


def envelope_quality(env: Envelope | None, max_age_s: float, now: datetime) -> QualityMeta:
    """Quality, age (0.1 s) and as-of time of an envelope; ``missing`` when there is none."""
    if env is None or env["fetched_at"] is None:
        return {"quality": "missing", "age_s": None, "asof": None}
    fetched_at = parse_utc(env["fetched_at"])
    return {
        "quality": quality(fetched_at, env["ttl_s"], max_age_s, now),
        "age_s": round(age_seconds(fetched_at, now), 1),
        "asof": env["fetched_at"],
    }


class IntelCache:
    """Envelopes on disk plus an in-process mirror. See the module docstring."""

    def __init__(self, directory: Path, *, size_limit: int = DEFAULT_SIZE_LIMIT_BYTES) -> None:
        if size_limit <= 0:
            raise ValueError(f"size_limit must be positive, got {size_limit}")
        self.directory = Path(directory)
        self._size_limit = size_limit
        self._reopen_lock = threading.Lock()
        self._disk = self._open_disk()
        self._mirror: dict[str, Envelope] = {}
        self._closed = False

    # -- reads (synchronous) ------------------------------------------------------------

    def get_envelope(self, key: str) -> Envelope | None:
        """The envelope of ``key`` or ``None``; a corrupt entry is logged and reads as None."""
        env = self._mirror.get(key)
        if env is not None or self._closed:
            return env
        try:
            raw = self._on_disk(lambda disk: disk.get(key, default=None))
        except Exception as exc:  # a damaged cache must never crash an episode
            log.warning("cache_read_failed", key=key, error=f"{type(exc).__name__}: {exc}")
            return None
        if raw is None:
            return None
        try:
            env = decode_envelope(raw)
        except ValueError as exc:
            log.warning("cache_entry_corrupt", key=key, error=str(exc))
            return None
        self._mirror[key] = env
        return env

    def get_with_quality(
        self, key: str, now: datetime, max_age_s: float
    ) -> tuple[dict[str, Any] | None, QualityMeta]:
        """``(data, {"quality", "age_s", "asof"})``; data only when fresh or stale.

        The returned data is shared with the cache: treat it as read-only.
        """
        env = self.get_envelope(key)
        meta = envelope_quality(env, max_age_s, now)
        data = env["data"] if env is not None and is_usable(meta["quality"]) else None
        return data, meta

    def keys(self) -> list[str]:
        """Every envelope key on disk or in the mirror, sorted."""
        found = set(self._mirror)
        if not self._closed:
            found.update(self._on_disk(lambda disk: [k for k in disk if isinstance(k, str)]))
        return sorted(k for k in found if not k.startswith((_DEDUP_PREFIX, _PROBE_KEY)))

    # -- writes (async, diskcache in a worker thread) -------------------------------------

    async def record_success(
        self,
        key: str,
        data: dict[str, Any],
        *,
        source: SourceName,
        now: datetime,
        ttl_s: int,
        max_age_s: int | None = None,
    ) -> Envelope:
        """Store a good fetch of ``key`` taken at ``now``."""
        stamp = utc_iso(now)
        env: Envelope = {
            "ok": True,
            "data": data,
            "fetched_at": stamp,
            "ttl_s": ttl_s,
            "error": None,
            "source": source,
            "attempted_at": stamp,
        }
        payload = orjson.dumps(env)  # fails here, on the caller's side, for unencodable data
        expire = _gc_expiry(max_age_s)
        await asyncio.to_thread(self._write_raw, key, payload, expire)
        # The mirror gets its own copy: the caller may go on mutating ``data``.
        self._mirror[key] = cast(Envelope, orjson.loads(payload))
        return env

    async def record_failure(
        self,
        key: str,
        error: str,
        now: datetime,
        ttl_s: int,
        *,
        source: SourceName | None = None,
        max_age_s: int | None = None,
    ) -> Envelope:
        """Record a failed attempt, keeping the last good data and its ``fetched_at``."""
        expire = _gc_expiry(max_age_s)
        attempt = utc_iso(now)
        env = await asyncio.to_thread(
            self._merge_failure, key, error, attempt, ttl_s, source, expire
        )
        self._mirror[key] = env
        return env

    async def add_if_absent(
        self, key: str, value: bytes | str | int | float, expire: float
    ) -> bool:
        """Atomically store ``value`` unless ``key`` exists; True when this call stored it.

        Lives in its own namespace (never collides with envelope keys); meant for trigger dedup.
        """
        self._check_open()
        added = await asyncio.to_thread(
            self._on_disk, lambda disk: disk.add(_DEDUP_PREFIX + key, value, expire)
        )
        return bool(added)

    def probe(self) -> None:
        """Write and read back a probe entry (blocking; for health checks); raises on failure."""
        self._check_open()
        stamp = os.urandom(8).hex()

        def write_and_read(disk: diskcache.Cache) -> object:
            disk.set(_PROBE_KEY, stamp)
            return disk.get(_PROBE_KEY)

        if self._on_disk(write_and_read) != stamp:
            raise RuntimeError("the cache did not return what was just written")

    def close(self) -> None:
        """Close the disk handle of this thread (idempotent). Reads then use the mirror only."""
        if self._closed:
            return
        self._closed = True
        self._disk.close()

    # -- worker-thread side -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"intel cache {self.directory} is closed")

    def _write_raw(self, key: str, payload: bytes, expire: float) -> None:
        self._check_open()
        self._on_disk(lambda disk: disk.set(key, payload, expire=expire))

    # -- corruption (see the module docstring) ---------------------------------------------

    def _open_disk(self) -> diskcache.Cache:
        try:
            return self._new_disk()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            self._move_aside(exc)
            return self._new_disk()

    def _new_disk(self) -> diskcache.Cache:
        return diskcache.Cache(
            str(self.directory),
            size_limit=self._size_limit,
            eviction_policy="least-recently-stored",
        )

    def _on_disk(self, operation: Callable[[diskcache.Cache], _T]) -> _T:
        """Run ``operation`` on the disk cache; on corruption replace the cache, retry once."""
        disk = self._disk
        try:
            return operation(disk)
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            with self._reopen_lock:
                if self._disk is disk:  # the first thread to see it replaces the cache
                    disk.close()
                    self._move_aside(exc)
                    self._disk = self._new_disk()
            return operation(self._disk)

    def _move_aside(self, exc: sqlite3.DatabaseError) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.directory.with_name(f"{self.directory.name}.corrupt-{stamp}")
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.directory.with_name(f"{self.directory.name}.corrupt-{stamp}-{suffix}")
        os.rename(self.directory, target)
        log.warning(
            "cache_corrupt",
            path=str(self.directory),
            moved_to=str(target),
            error=f"{type(exc).__name__}: {exc}",
            hint="started with an empty cache (intel is refetched); inspect or delete the "
            "moved folder",
        )

    def _merge_failure(
        self,
        key: str,
        error: str,
        attempt: str,
        ttl_s: int,
        source: SourceName | None,
        expire: float,
    ) -> Envelope:
        self._check_open()
        return self._on_disk(
            lambda disk: self._merge_failure_in(disk, key, error, attempt, ttl_s, source, expire)
        )

    def _merge_failure_in(
        self,
        disk: diskcache.Cache,
        key: str,
        error: str,
        attempt: str,
        ttl_s: int,
        source: SourceName | None,
        expire: float,
    ) -> Envelope:
        # A transaction so another process's write cannot slip between our read and write.
        with disk.transact():
            previous: Envelope | None = None
            raw = disk.get(key, default=None)
            if raw is not None:
                try:
                    previous = decode_envelope(raw)
                except ValueError as exc:
                    log.warning("cache_entry_corrupt", key=key, error=str(exc))
            env: Envelope = {
                "ok": False,
                "data": previous["data"] if previous else None,
                "fetched_at": previous["fetched_at"] if previous else None,
                "ttl_s": ttl_s,
                "error": error,
                "source": previous["source"] if previous and previous["source"] else source,
                "attempted_at": attempt,
            }
            disk.set(key, orjson.dumps(env), expire=expire)
        return env


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    # OperationalError is the environment (disk full, locked, read-only), not the file.
    return not isinstance(exc, sqlite3.OperationalError)


def _gc_expiry(max_age_s: int | None) -> float:
    if max_age_s is None:
        return float(DEFAULT_GC_EXPIRY_S)
    return float(GC_EXPIRY_FACTOR * max_age_s)


__all__ = [
    "DEFAULT_SIZE_LIMIT_BYTES",
    "Envelope",
    "IntelCache",
    "QualityMeta",
    "decode_envelope",
    "envelope_quality",
]
