"""One owner per data dir: an exclusive ``flock`` on ``<data_dir>/clmmd.lock``.

``clmmd run`` and learning campaigns take it before touching anything (recovery, the trigger
ledger, the agent state); a second such process gets :class:`DataDirBusy`, whose message names
the holder (pid, command, start time) and is the one line the CLI prints (exit status 2). A data
dir that cannot be created at all is :class:`DataDirUnusable` (one line, exit status 1).
Read-only commands (``status``, ``runs``, ``report``) never take it.

The lock belongs to the open file description: the kernel releases it when the holder exits,
however it exits (kill -9 included), so a stale lock file is harmless and never removed (removing
a locked file would let two processes lock two different files). The file's content (JSON: pid,
command, started_at) is only there to name the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import datetime
from pathlib import Path
from types import TracebackType

import orjson

from clmmd.artifacts.base.clock import utc_iso

LOCK_FILENAME = "clmmd.lock"


class DataDirBusy(Exception):
    """Another live process owns the data dir; ``str()`` is the one line to show."""


class DataDirUnusable(Exception):
    """The data dir cannot be created or its lock file opened; ``str()`` says why."""


class DataDirLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILENAME
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path, command: str, now: datetime) -> DataDirLock:
        """Take the data dir for ``command`` (e.g. ``"run"``); :class:`DataDirBusy` when another
        process holds it. Blocking (a few syscalls)."""
        data_dir = Path(data_dir)
        path = data_dir / LOCK_FILENAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise DataDirUnusable(
                f"cannot use data dir {data_dir}: {exc.strerror or exc} (check CLMMD_DATA_DIR, "
                "its ownership and free space)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.pread(fd, 4096, 0))
            os.close(fd)
            raise DataDirBusy(
                f"data dir {data_dir} is in use by {holder}; stop that process first, or give "
                "this one its own --data-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "command": command, "started_at": utc_iso(now)}
        with contextlib.suppress(OSError):  # a full disk must not stop the owner
            os.ftruncate(fd, 0)
            os.pwrite(fd, orjson.dumps(info) + b"\n", 0)
        return cls(data_dir, fd)

    def release(self) -> None:
        """Give the data dir up (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the description releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def current_holder(data_dir: Path, locks_table: Path = Path("/proc/locks")) -> str | None:
    """Who holds the data dir right now (``describe_holder``'s text), or ``None`` when nobody
    does. For ``clmmd status``: it must not take the lock itself, even for a moment, or a
    daemon starting at that instant would be refused; so it looks the lock file's inode up in
    the kernel's lock table (Linux), else asks whether the recorded pid is alive."""
    path = Path(data_dir) / LOCK_FILENAME
    try:
        raw, stat = path.read_bytes(), path.stat()
    except OSError:
        return None
    try:
        table = locks_table.read_text()
    except OSError:
        return describe_holder(raw) if _recorded_pid_alive(raw) else None
    # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": device major:minor in hex, then the
    # inode in decimal (lines of blocked waiters read "1: -> FLOCK …" and are skipped).
    wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            return describe_holder(raw)
    return None


def _recorded_pid_alive(raw: bytes) -> bool:
    try:
        pid = int(orjson.loads(raw)["pid"])
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, someone else's
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OSError):
        return False
    return True


def describe_holder(raw: bytes) -> str:
    """``clmmd run (pid 123, started 2026-…)`` from the lock file's content."""
    try:
        info = orjson.loads(raw)
        return f"clmmd {info['command']} (pid {int(info['pid'])}, started {info['started_at']})"
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "another clmmd process (its lock file names no holder)"


__all__ = [
    "LOCK_FILENAME",
    "DataDirBusy",
    "DataDirLock",
    "DataDirUnusable",
    "current_holder",
    "describe_holder",
]
