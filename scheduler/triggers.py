"""Appending to the trigger file ``<data_dir>/dune_triggers.jsonl`` (any process may append).

Each record is one line written with a single ``os.write`` on a descriptor opened with
``O_APPEND``, under an exclusive ``flock`` so concurrent writers never interleave, even for
lines longer than the pipe/atomic-write size. Lines over 64 KiB are refused (the reader treats
such a line as malformed).

These functions do blocking file I/O: call them from async code through ``asyncio.to_thread``.
The reading side (the daemon's tail of this file) lives elsewhere.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from clmmd.artifacts.base.clock import Clock, SystemClock, utc_iso
from clmmd.scheduler.registry import PRIORITIES, is_pool_address

TRIGGER_FILENAME = "dune_triggers.jsonl"
MAX_LINE_BYTES = 64 * 1024
MAX_REASON_CHARS = 200
MAX_EPISODES_PER_TRIGGER = 10_000


def trigger_path(data_dir: Path) -> Path:
    return Path(data_dir) / TRIGGER_FILENAME


def append_trigger(path: Path, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line; ``ValueError`` if the line would exceed 64 KiB."""
    line = orjson.dumps(dict(record)) + b"\n"
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"trigger record is {len(line)} bytes, over the {MAX_LINE_BYTES} limit")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        # A regular-file write is whole in practice; the loop only covers a signal or a full
        # disk, and the lock keeps any continuation contiguous.
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)  # also releases the lock


def trigger_refresh(
    reason: str,
    pool_address: str,
    *,
    data_dir: Path | None = None,
    priorities: Iterable[str] = ("P0", "P1"),
    clock: Clock | None = None,
) -> str:
    """Ask the daemon to refresh ``pool_address``'s keys of ``priorities`` now; returns the id.

    ``data_dir`` defaults to ``$CLMMD_DATA_DIR`` or ``./data``, as the daemon's does, so
    another program can simply call ``trigger_refresh("out_of_range", pool)``.
    """
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise ValueError(
            f"trigger field 'reason': expected 1-{MAX_REASON_CHARS} characters, got {reason!r:.60}"
        )
    if not isinstance(pool_address, str) or not is_pool_address(pool_address):
        raise ValueError(
            f"trigger field 'pool_address': expected 0x and 40 hex digits, got {pool_address!r:.60}"
        )
    wanted = list(dict.fromkeys(priorities))
    if not wanted or any(p not in PRIORITIES for p in wanted):
        raise ValueError(f"trigger field 'priorities': expected some of P0-P3, got {wanted!r:.60}")
    record_id = uuid.uuid4().hex
    now = (clock or SystemClock()).now()
    record = {
        "id": record_id,
        "ts": utc_iso(now),
        "type": "refresh",
        "reason": reason,
        "pool_address": pool_address,
        "priorities": wanted,
    }
    _append_in(data_dir, record)
    return record_id


def trigger_episodes(
    count: int, *, data_dir: Path | None = None, clock: Clock | None = None
) -> str:
    """Ask the daemon to run ``count`` episodes; returns the record id."""
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not (1 <= count <= MAX_EPISODES_PER_TRIGGER)
    ):
        raise ValueError(
            f"trigger field 'count': expected an integer 1-{MAX_EPISODES_PER_TRIGGER},"
            f" got {count!r}"
        )
    record_id = uuid.uuid4().hex
    now = (clock or SystemClock()).now()
    record = {"id": record_id, "ts": utc_iso(now), "type": "episodes", "count": count}
    _append_in(data_dir, record)
    return record_id


def default_data_dir() -> Path:
    """``$CLMMD_DATA_DIR`` or ``./data``: where the daemon looks by default."""
    return Path(os.environ.get("CLMMD_DATA_DIR") or "data")


def _append_in(data_dir: Path | None, record: Mapping[str, Any]) -> None:
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    append_trigger(trigger_path(directory), record)
