"""The intel cache: one JSON envelope per key on disk (diskcache), mirrored in process.

Envelope (stored as orjson bytes)::

    {"ok": bool, "data": {...} | null, "fetched_at": ISO UTC | null, "asof": ISO UTC | null,
     "ttl_s": int, "error": str | null,
     "source": "dune_sql" | "dune_execute" | "dune_latest" | "mock" | null,
     "attempted_at": ISO UTC, "credits": float | null}

validated by the pydantic model :class:`Envelope`. ``data``/``fetched_at``/``asof``/
``source``/``credits`` describe the last *good* fetch (``asof``: when Dune finished computing
it, its ``execution_ended_at``; quality is measured from it); ``ok``/``error``/
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
from typing import Any, TypedDict, TypeVar

import diskcache
import orjson
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clmmd.artifacts.base.clock import parse_utc, utc_iso
from clmmd.artifacts.writer import move_aside
from clmmd.scheduler.quality import Quality, age_seconds, is_usable, quality_at_age
from clmmd.scheduler.source import SourceName

log = structlog.get_logger(__name__)

DEFAULT_SIZE_LIMIT_BYTES = 256 * 1024 * 1024
#: Garbage-collection expiry as a multiple of a key's max_age.
GC_EXPIRY_FACTOR = 7
#: Used when a writer does not say what the key's max_age is.
DEFAULT_GC_EXPIRY_S = 7 * 24 * 3600
_DEDUP_PREFIX = "~dedup:"  # trigger ids of earlier versions (now in the trigger ledger)
_META_PREFIX = "~meta:"
_PROBE_KEY = "~probe"
_T = TypeVar("_T")


class Envelope(BaseModel):
    """One cache entry; see the module docstring. Immutable: writers build a new one."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    ok: bool
    data: dict[str, Any] | None
    fetched_at: str | None
    asof: str | None = None
    ttl_s: int = Field(ge=0)
    error: str | None
    source: SourceName | None
    attempted_at: str
    credits: float | None = None

    @field_validator("fetched_at", "asof", "attempted_at")
    @classmethod
    def _utc(cls, value: str | None) -> str | None:
        if value is not None:
            parse_utc(value)  # raises ValueError
        return value

    @model_validator(mode="after")
    def _data_with_time(self) -> Envelope:
        if (self.data is None) != (self.fetched_at is None):
            raise ValueError("data and fetched_at must be both present or both null")
        return self

    @property
    def age_from(self) -> str | None:
        """The as-of time quality is measured from: when Dune finished the execution
        (``asof``), else when we fetched the value."""
        return self.asof or self.fetched_at


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
    try:
        return Envelope.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "envelope"
        raise ValueError(f"field {where!r}: {error['msg']}") from None


def envelope_quality(env: Envelope | None, max_age_s: float, now: datetime) -> QualityMeta:
    """Quality, age (0.1 s) and as-of time of an envelope; ``missing`` when there is none.

    Age counts from ``asof`` (Dune's ``execution_ended_at``) when the source gave one: a
    ``latest`` result fetched a second ago but computed two days ago is two days old.
    """
    if env is None or env.fetched_at is None:
        return {"quality": "missing", "age_s": None, "asof": None}
    asof = env.age_from
    assert asof is not None  # fetched_at is set
    age = age_seconds(parse_utc(asof), now)
    return {
        "quality": quality_at_age(age, env.ttl_s, max_age_s),
        "age_s": round(age, 1),
        "asof": asof,
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
        data = env.data if env is not None and is_usable(meta["quality"]) else None
        return data, meta

    def keys(self) -> list[str]:
        """Every envelope key on disk or in the mirror, sorted."""
        found = set(self._mirror)
        if not self._closed:
            found.update(self._on_disk(lambda disk: [k for k in disk if isinstance(k, str)]))
        return sorted(
            k for k in found if not k.startswith((_DEDUP_PREFIX, _META_PREFIX, _PROBE_KEY))
        )

    def get_meta(self, name: str) -> dict[str, Any] | None:
        """A small JSON document kept beside the envelopes (e.g. the daily credit total);
        ``None`` when absent or unreadable. Always read from disk: other processes write it."""
        if self._closed:
            return None
        try:
            raw = self._on_disk(lambda disk: disk.get(_META_PREFIX + name, default=None))
            value = orjson.loads(raw) if raw is not None else None
        except Exception as exc:  # a damaged cache must never crash a reader
            log.warning("cache_meta_unreadable", name=name, error=f"{type(exc).__name__}: {exc}")
            return None
        return value if isinstance(value, dict) else None

    async def update_meta(
        self,
        name: str,
        update: Callable[[dict[str, Any] | None], dict[str, Any]],
        *,
        expire: float | None = None,
    ) -> dict[str, Any]:
        """Read-modify-write a meta document in one transaction (safe across processes)."""
        return await asyncio.to_thread(self._update_meta, _META_PREFIX + name, update, expire)

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
        asof: datetime | None = None,
        credits: float | None = None,
    ) -> Envelope:
        """Store a good fetch of ``key`` taken at ``now``; ``asof`` is when the source computed
        it (Dune's ``execution_ended_at``), ``credits`` what the fetch cost."""
        stamp = utc_iso(now)
        fields = {
            "ok": True,
            "data": data,
            "fetched_at": stamp,
            "asof": utc_iso(asof) if asof is not None else None,
            "ttl_s": ttl_s,
            "error": None,
            "source": source,
            "attempted_at": stamp,
            "credits": credits,
        }
        payload = orjson.dumps(fields)  # fails here, on the caller's side, for unencodable data
        expire = _gc_expiry(max_age_s)
        await asyncio.to_thread(self._write_raw, key, payload, expire)
        # The envelope gets its own copy of ``data``: the caller may go on mutating it.
        env = Envelope.model_validate(orjson.loads(payload))
        self._mirror[key] = env
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
        self._check_open()
        env = await asyncio.to_thread(
            self._on_disk,
            lambda disk: self._merge_failure(disk, key, error, attempt, ttl_s, source, expire),
        )
        self._mirror[key] = env
        return env

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
        target = move_aside(self.directory, datetime.now(UTC))
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
            env = Envelope(
                ok=False,
                data=previous.data if previous else None,
                fetched_at=previous.fetched_at if previous else None,
                asof=previous.asof if previous else None,
                ttl_s=ttl_s,
                error=error,
                source=previous.source if previous and previous.source else source,
                attempted_at=attempt,
                credits=previous.credits if previous else None,
            )
            disk.set(key, orjson.dumps(env.model_dump()), expire=expire)
        return env

    def _update_meta(
        self,
        key: str,
        update: Callable[[dict[str, Any] | None], dict[str, Any]],
        expire: float | None,
    ) -> dict[str, Any]:
        self._check_open()

        def read_modify_write(disk: diskcache.Cache) -> dict[str, Any]:
            with disk.transact():
                raw = disk.get(key, default=None)
                try:
                    current = orjson.loads(raw) if raw is not None else None
                except orjson.JSONDecodeError:
                    current = None
                value = update(current if isinstance(current, dict) else None)
                disk.set(key, orjson.dumps(value), expire=expire)
            return value

        return self._on_disk(read_modify_write)


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
