"""The daemon's tail of the trigger file ``<data_dir>/dune_triggers.jsonl``.

:class:`TriggerTail` reads complete lines as they are appended, turns each into a trigger
(:mod:`scheduler.trigger_lines`) and awaits ``on_refresh`` / ``on_episodes`` for it, in file
order. ``run`` wakes within milliseconds of an append (a watch on the *directory*, so creation
and rotation are seen too) with a slow stat poll as a fallback for missed events
(:mod:`scheduler.trigger_watch`); ``drain_once`` is the same work done once, for ``--once`` and
for tests.

Position. After every batch the tail saves the position of the next unread line, and resumes
there on start (:mod:`scheduler.trigger_position`). A shorter file means truncation: it starts
again at 0 (``trigger_file_truncated``); a file truncated and refilled past the old offset
between two reads cannot be told apart. Another inode means rotation: the old file is read to
its end through the descriptor still held (its unterminated last line, if any, is taken as a
line), then the new file is read from 0 (``trigger_file_rotated``). A rotation while the daemon
was stopped cannot finish the old file: its unread tail is not seen.

At most once. A trigger with an ``id`` is dispatched only when the cache's atomic
``add_if_absent("trigger:<id>")`` says it is new: it is marked *before* its handler runs, so a
crash in between loses it rather than repeating it. Handlers should be quick (enqueue work):
the tail waits for each before reading on.

Never fatal. A malformed, oversized or binary line is logged (``trigger_rejected``) with its line
number, appended to ``dune_triggers.rejects.jsonl`` and skipped; a handler that raises is logged
(``trigger_handler_failed``); the lines around either are processed as usual. Memory stays
bounded: reads are 64 KiB chunks and no line keeps more than ``max_line_bytes``.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import structlog

from clmmd.artifacts.base.clock import Clock, utc_iso
from clmmd.artifacts.writer import append_line
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.trigger_lines import (
    EpisodesTrigger,
    LineAssembler,
    RawLine,
    RefreshTrigger,
    Rejection,
    parse_trigger_line,
    reject_record,
)
from clmmd.scheduler.trigger_position import OFFSET_FILENAME, FileId, PositionFile
from clmmd.scheduler.trigger_watch import directory_watch, wait_for_work
from clmmd.scheduler.triggers import MAX_LINE_BYTES, TRIGGER_FILENAME

log = structlog.get_logger(__name__)

REJECTS_FILENAME = "dune_triggers.rejects.jsonl"
READ_CHUNK_BYTES = 64 * 1024
DEDUPE_PREFIX = "trigger:"


@dataclass
class TailStats:
    """Totals since start, for status and metrics (``offset``/``line_no``: next line to read)."""

    lines_processed: int = 0
    dispatched: int = 0
    rejected: int = 0
    duplicates: int = 0
    handler_failures: int = 0
    dedupe_failures: int = 0
    offset: int = 0
    line_no: int = 0
    last_lag_s: float | None = None


@dataclass
class DrainReport:
    """What one ``drain_once`` did."""

    lines: int = 0
    dispatched: int = 0
    rejected: int = 0
    duplicates: int = 0
    handler_failures: int = 0
    rotated: bool = False
    truncated: bool = False


class TriggerTail:
    """Tails the trigger file of ``data_dir``; see the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        cache: IntelCache,
        clock: Clock,
        *,
        on_refresh: Callable[[RefreshTrigger], Awaitable[None]],
        on_episodes: Callable[[EpisodesTrigger], Awaitable[None]],
        poll_interval_s: float = 2.0,
        dedupe_ttl_s: float = 7 * 24 * 3600,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if poll_interval_s <= 0 or dedupe_ttl_s <= 0 or max_line_bytes <= 0:
            raise ValueError("poll_interval_s, dedupe_ttl_s and max_line_bytes must be positive")
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / TRIGGER_FILENAME
        self.offset_path = self.data_dir / OFFSET_FILENAME
        self._position = PositionFile(self.offset_path)
        self.rejects_path = self.data_dir / REJECTS_FILENAME
        self._cache = cache
        self._clock = clock
        self._on_refresh = on_refresh
        self._on_episodes = on_episodes
        self._poll_interval_s = poll_interval_s
        self._dedupe_ttl_s = dedupe_ttl_s
        self._max_line_bytes = max_line_bytes
        self._fd: int | None = None
        self._file_id: FileId | None = None
        self._lines = LineAssembler(max_line_bytes=max_line_bytes)
        self._resumed = False  # the offset file is consulted once, on the first open
        self._stats = TailStats()
        self._lock = asyncio.Lock()

    @property
    def stats(self) -> TailStats:
        """A snapshot of the counters."""
        return replace(self._stats, offset=self._lines.offset, line_no=self._lines.line_no)

    async def run(self, stop: asyncio.Event) -> None:
        """Drain now, then on every change in ``data_dir`` and every ``poll_interval_s``,
        until ``stop`` is set. Errors are logged and retried at the next wake-up."""
        await asyncio.to_thread(self.data_dir.mkdir, parents=True, exist_ok=True)
        try:
            async with directory_watch(
                self.data_dir, TRIGGER_FILENAME, poll_interval_s=self._poll_interval_s
            ) as wake:
                while not stop.is_set():
                    wake.clear()  # before draining: an append during the drain wakes us again
                    try:
                        await self.drain_once()
                    except Exception as exc:
                        log.error(
                            "trigger_drain_failed",
                            error=f"{type(exc).__name__}: {exc}",
                            hint="check the trigger file and disk; retried at the next wake-up",
                        )
                    await wait_for_work(stop, wake, self._clock, self._poll_interval_s)
        finally:
            self.close()

    async def drain_once(self) -> DrainReport:
        """Process every complete line available now, across truncation and rotation."""
        async with self._lock:
            report = DrainReport()
            if self._fd is None:
                await self._open_current()
            while self._fd is not None:
                await self._read_to_end(report)
                if not await self._follow_rotation(report):
                    break
            await self._persist()
            return report

    def close(self) -> None:
        """Release the descriptor held on the trigger file (a later drain reopens it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading ----------------------------------------------------------------------

    async def _open_current(self) -> None:
        opened = await asyncio.to_thread(_open_regular, self.path)
        if opened is None:
            return
        self._fd, self._file_id, size = opened
        offset, line_no = 0, 0
        if not self._resumed:
            self._resumed = True
            offset, line_no = await self._position.resume_point(self._file_id, size)
        self._lines = LineAssembler(
            offset=offset, line_no=line_no, max_line_bytes=self._max_line_bytes
        )
        log.info("trigger_tail_opened", path=str(self.path), offset=offset, line_no=line_no)

    async def _read_to_end(self, report: DrainReport) -> None:
        assert self._fd is not None
        while True:
            position = self._lines.offset + self._lines.pending_bytes
            size, chunk = await asyncio.to_thread(_read_at, self._fd, position)
            if size < position:
                log.warning("trigger_file_truncated", offset=position, size=size)
                report.truncated = True
                self._lines = LineAssembler(max_line_bytes=self._max_line_bytes)
                continue
            if not chunk:
                return
            for raw in self._lines.feed(chunk):
                await self._handle(raw, report)
            await self._persist()

    async def _follow_rotation(self, report: DrainReport) -> bool:
        """If the path now names another file, finish ours and switch; True when switched."""
        current = await asyncio.to_thread(_stat_id, self.path)
        if current is None or current == self._file_id:
            return False  # renamed away with no successor yet: keep reading the old file
        await self._read_to_end(report)  # a writer may have appended just before the rename
        leftover = self._lines.flush()
        if leftover is not None:
            await self._handle(leftover, report)
        previous = self._file_id
        self.close()
        report.rotated = True
        log.info(
            "trigger_file_rotated",
            previous_ino=previous.ino if previous else None,
            ino=current.ino,
            previous_lines=self._lines.line_no,
        )
        self._position.forget_saved()
        self._lines = LineAssembler(max_line_bytes=self._max_line_bytes)
        await self._open_current()
        return self._fd is not None

    # -- one line ---------------------------------------------------------------------

    async def _handle(self, raw: RawLine, report: DrainReport) -> None:
        self._stats.lines_processed += 1
        report.lines += 1
        parsed = parse_trigger_line(raw, max_line_bytes=self._max_line_bytes)
        if isinstance(parsed, Rejection):
            await self._reject(parsed, raw, report)
            return
        if parsed.id is not None and not await self._is_new(parsed):
            report.duplicates += 1
            return
        now = self._clock.now()
        if parsed.ts is not None:
            self._stats.last_lag_s = round((now - parsed.ts).total_seconds(), 3)
        kind = "refresh" if isinstance(parsed, RefreshTrigger) else "episodes"
        log.info("trigger_received", type=kind, id=parsed.id, line_no=parsed.line_no)
        try:
            if isinstance(parsed, RefreshTrigger):
                await self._on_refresh(parsed)
            else:
                await self._on_episodes(parsed)
        except Exception as exc:
            self._stats.handler_failures += 1
            report.handler_failures += 1
            log.error(
                "trigger_handler_failed",
                type=kind,
                id=parsed.id,
                line_no=parsed.line_no,
                error=f"{type(exc).__name__}: {exc}",
                hint="this trigger was skipped; append it again once the cause is fixed",
                exc_info=True,
            )
            return
        self._stats.dispatched += 1
        report.dispatched += 1

    async def _is_new(self, trigger: RefreshTrigger | EpisodesTrigger) -> bool:
        assert trigger.id is not None
        stamp = utc_iso(trigger.ts or self._clock.now())
        try:
            added = await self._cache.add_if_absent(
                DEDUPE_PREFIX + trigger.id, stamp, expire=self._dedupe_ttl_s
            )
        except Exception as exc:
            # Cannot prove it is new: skipping keeps the at-most-once promise.
            self._stats.dedupe_failures += 1
            log.error(
                "trigger_dedupe_failed",
                id=trigger.id,
                line_no=trigger.line_no,
                error=f"{type(exc).__name__}: {exc}",
                hint="the cache is unreadable (disk?); the trigger was skipped, append it again",
            )
            return False
        if not added:
            self._stats.duplicates += 1
            log.debug("trigger_duplicate", id=trigger.id, line_no=trigger.line_no)
        return added

    async def _reject(self, rejection: Rejection, raw: RawLine, report: DrainReport) -> None:
        self._stats.rejected += 1
        report.rejected += 1
        log.warning(
            "trigger_rejected",
            line_no=rejection.line_no,
            offset=rejection.offset,
            reason=rejection.reason,
        )
        record = reject_record(rejection, raw, self._clock.now())
        try:
            await asyncio.to_thread(append_line, self.rejects_path, orjson.dumps(record))
        except OSError as exc:
            log.warning("trigger_reject_write_failed", line_no=rejection.line_no, error=str(exc))

    async def _persist(self) -> None:
        if self._file_id is not None:
            await self._position.save(self._file_id, self._lines.offset, self._lines.line_no)


# -- blocking helpers (run in worker threads) ---------------------------------------------


def _open_regular(path: Path) -> tuple[int, FileId, int] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        log.warning("trigger_file_not_regular", path=str(path))
        return None
    return fd, FileId(info.st_dev, info.st_ino), info.st_size


def _read_at(fd: int, position: int) -> tuple[int, bytes]:
    """(current size, up to one chunk from ``position``); no read when the file shrank."""
    size = os.fstat(fd).st_size
    if size < position:
        return size, b""
    return size, os.pread(fd, READ_CHUNK_BYTES, position)


def _stat_id(path: Path) -> FileId | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return FileId(info.st_dev, info.st_ino)


__all__ = [
    "OFFSET_FILENAME",
    "REJECTS_FILENAME",
    "DrainReport",
    "TailStats",
    "TriggerTail",
]
