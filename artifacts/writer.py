"""Atomic, immutable artifact files.

Every artifact is written to a temporary file in the same directory, fsynced, then *linked* to
its final name: ``link`` fails when the name exists, so a file is never overwritten, and readers
never see a partial file. The directory is fsynced afterwards so the new name survives a power
cut. An episode folder is built under a temporary name with its proposal.json and renamed into
place, so no episode folder ever exists without its proposal.

These functions block (fsync); async callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

TEMP_MARKER = ".tmp-"
_JSON_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


class ArtifactExistsError(FileExistsError):
    """Refused: the artifact already exists and artifacts are immutable."""


def dumps(obj: Any) -> bytes:
    """The canonical JSON encoding of every artifact (sorted keys, 2-space indent, newline)."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    return orjson.dumps(obj, option=_JSON_OPTS) + b"\n"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def _write_temp(final: Path, data: bytes, durable: bool) -> Path:
    temp = _temp_path(final)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def write_new(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Create ``path`` atomically with ``data``; :class:`ArtifactExistsError` if it exists."""
    if path.exists():
        raise ArtifactExistsError(f"refusing to overwrite artifact {path}")
    temp = _write_temp(path, data, durable)
    try:
        os.link(temp, path)
    except FileExistsError:
        raise ArtifactExistsError(f"refusing to overwrite artifact {path}") from None
    finally:
        temp.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)


def write_json_new(path: Path, obj: Any, *, durable: bool = True) -> None:
    """Create a JSON artifact atomically; never overwrites."""
    write_new(path, dumps(obj), durable=durable)


def replace_json(path: Path, obj: Any, *, durable: bool = True) -> None:
    """Atomically replace ``path`` (only for files that are rewritten: metrics_summary.json)."""
    temp = _write_temp(path, dumps(obj), durable)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def create_episode_dir(
    episodes_dir: Path, episode_id: str, proposal: Any, *, durable: bool = True
) -> Path:
    """Create ``episodes_dir/episode_id`` holding proposal.json, atomically.

    The folder is assembled under a hidden temporary name and renamed into place. ``rename``
    onto an existing non-empty directory fails, and we check first for the empty case, so an
    existing episode is never replaced.
    """
    final = episodes_dir / episode_id
    if final.exists():
        raise ArtifactExistsError(f"refusing to overwrite episode folder {final}")
    staging = episodes_dir / f".{episode_id}{TEMP_MARKER}{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    try:
        write_json_new(staging / "proposal.json", proposal, durable=durable)
        if final.exists():
            raise ArtifactExistsError(f"refusing to overwrite episode folder {final}")
        try:
            staging.rename(final)
        except OSError as exc:
            # Another writer won the race between our check and the rename: its folder holds
            # a proposal.json, so the rename fails with ENOTEMPTY/EEXIST. Same refusal as above.
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise ArtifactExistsError(f"refusing to overwrite episode folder {final}") from None
            raise
    except BaseException:
        with contextlib.suppress(OSError):
            for child in staging.iterdir():
                child.unlink()
            staging.rmdir()
        raise
    if durable:
        fsync_dir(episodes_dir)
    return final


def move_aside(path: Path, now: datetime, *, companions: tuple[str, ...] = ()) -> Path:
    """Rename ``path`` (a file or a folder SQLite or a parser could not read) to a free
    ``<name>.corrupt-<YYYYmmddTHHMMSSZ>[-n]`` beside it, never over an earlier one; files named
    ``<path><suffix>`` for each of ``companions`` (e.g. SQLite's ``-wal``) follow it. Returns
    the new path."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{suffix}")
    os.rename(path, target)
    for extra in companions:
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{path}{extra}", f"{target}{extra}")
    return target


def append_line(path: Path, line: bytes, *, durable: bool = False) -> None:
    """Append one line with a single ``write`` under an exclusive lock.

    ``O_APPEND`` makes each write land at the end; the ``flock`` keeps concurrent writers in
    other processes (which may not write a line in one call) from interleaving with us.
    """
    if not line.endswith(b"\n"):
        line += b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
