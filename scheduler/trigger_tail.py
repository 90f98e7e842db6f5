"""The daemon's tail of the trigger file ``<data_dir>/dune_triggers.jsonl``.

:class:`TriggerTail` reads complete lines as they are appended, turns each into a trigger
(:mod:`scheduler.trigger_lines`) and awaits ``on_refresh`` / ``on_episodes`` for it, in file
order. ``run`` wakes within milliseconds of an append (a watch on the *directory*, so creation
and rotation are seen too) with a slow stat poll as a fallback for missed events
(:mod:`scheduler.trigger_watch`); ``drain_once`` is the same work done once, for ``--once`` and
for tests.

Position and acceptance. Each chunk read is accepted into the trigger ledger in one transaction
together with the position after it (:mod:`scheduler.trigger_ledger`), and only then are its
triggers dispatched; the tail resumes at the saved position on start
(:mod:`scheduler.trigger_position`). A shorter file means truncation: it starts
again at 0 (``trigger_file_truncated``); a file truncated and refilled past the old offset
between two reads cannot be told apart. Another inode means rotation: the old file is read to
its end through the descriptor still held (its unterminated last line, if any, is taken as a
line), then the new file is read from 0 (``trigger_file_rotated``). A rotation while the daemon
was stopped cannot finish the old file: its unread tail is not seen.

Exactly once. A line is accepted once (the position moves in the same transaction) and an id
the ledger already holds is a duplicate, not dispatched again. What a dispatched trigger asks
for is the ledger's to keep: a crash after acceptance does not lose it (the daemon resumes
pending work from the ledger at start). Handlers should be quick (enqueue work): the tail waits
for each before reading on.

Only a regular file. A FIFO, device, directory or symbolic link at the trigger path is refused
(``trigger_file_refused``, logged once per file): opening a FIFO would block the reader for
good, and following a link would copy another file's lines (secrets included) into the rejects
file. The tail keeps running and takes the path up again once it names a regular file.

Never fatal. A malformed, oversized or binary line is logged (``trigger_rejected``) with its line
number, appended to ``dune_triggers.rejects.jsonl`` and skipped; a handler that raises is logged
(``trigger_handler_failed``); the lines around either are processed as usual. A ledger that
cannot be written (full disk) stops reading, without losing the place, until it can. Memory stays
bounded: reads are 64 KiB chunks and no line keeps more than ``max_line_bytes``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

import orjson
import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.artifacts.writer import append_line
from clmmd.scheduler.trigger_ledger import LEDGER_FILENAME, TriggerLedger
from clmmd.scheduler.trigger_lines import (
    EpisodesTrigger,
    LineAssembler,
    RawLine,
    RefreshTrigger,
    Rejection,
    Trigger,
    parse_trigger_line,
    reject_record,
)
from clmmd.scheduler.trigger_position import FileId, Position, resume_point
from clmmd.scheduler.trigger_watch import directory_watch, wait_for_work
from clmmd.scheduler.triggers import MAX_LINE_BYTES, TRIGGER_FILENAME

log = structlog.get_logger(__name__)

REJECTS_FILENAME = "dune_triggers.rejects.jsonl"
READ_CHUNK_BYTES = 64 * 1024


@dataclass
class TailStats:
    """Totals since start, for status and metrics (``offset``/``line_no``: next line to read)."""

    lines_processed: int = 0
    dispatched: int = 0
    rejected: int = 0
    duplicates: int = 0
    handler_failures: int = 0
    ledger_failures: int = 0
    offset: int = 0
    line_no: int = 0
    last_lag_s: float | None = None
    refused: str | None = None  # why the path is not being read (not a regular file)


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


class LedgerUnavailable(Exception):
    """The ledger refused a write: reading stops at the last accepted line until it works."""


class TriggerTail:
    """Tails the trigger file of ``data_dir``; see the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        ledger: TriggerLedger,
        clock: Clock,
        *,
        on_refresh: Callable[[RefreshTrigger], Awaitable[None]],
        on_episodes: Callable[[EpisodesTrigger], Awaitable[None]],
        poll_interval_s: float = 2.0,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if poll_interval_s <= 0 or max_line_bytes <= 0:
            raise ValueError("poll_interval_s and max_line_bytes must be positive")
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / TRIGGER_FILENAME
        self.ledger_path = self.data_dir / LEDGER_FILENAME
        self.rejects_path = self.data_dir / REJECTS_FILENAME
        self._ledger = ledger
        self._clock = clock
        self._on_refresh = on_refresh
        self._on_episodes = on_episodes
        self._poll_interval_s = poll_interval_s
        self._max_line_bytes = max_line_bytes
        self._fd: int | None = None
        self._file_id: FileId | None = None
        self._lines = LineAssembler(max_line_bytes=max_line_bytes)
        self._resumed = False  # the saved position is consulted once, on the first open
        self._saved: Position | None = None  # what the ledger holds, to skip rewriting it
        self._refused: tuple[str, int] | None = None  # (reason, inode) last logged
        self._ledger_failing = False
        self._stats = TailStats()
        self._lock = asyncio.Lock()

    @property
    def ledger_failing(self) -> bool:
        """True while the ledger refuses writes (reading waits at the last accepted line)."""
        return self._ledger_failing

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
                    except LedgerUnavailable:
                        pass  # logged once when it began; retried at the next wake-up
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
        if isinstance(opened, _Refusal):
            self._refuse(opened)
            return
        if opened is None:  # nothing there (any more): nothing refused either
            self._stats.refused = None
            return
        if self._refused is not None:
            log.info("trigger_file_accepted", path=str(self.path))
            self._refused = None
            self._stats.refused = None
        self._fd, self._file_id, size = opened
        offset, line_no = 0, 0
        if not self._resumed:
            self._resumed = True
            self._saved = await asyncio.to_thread(self._ledger.position)
            offset, line_no, note = resume_point(self._saved, self._file_id, size)
            if note == "rotated_while_stopped" and self._saved is not None:
                log.info(
                    "trigger_file_rotated", previous_ino=self._saved.file.ino, while_stopped=True
                )
            elif note == "truncated_while_stopped" and self._saved is not None:
                log.warning("trigger_file_truncated", offset=self._saved.offset, size=size)
        self._lines = LineAssembler(
            offset=offset, line_no=line_no, max_line_bytes=self._max_line_bytes
        )
        log.info("trigger_tail_opened", path=str(self.path), offset=offset, line_no=line_no)

    def _refuse(self, refusal: _Refusal) -> None:
        key = (refusal.reason, refusal.ino)
        self._stats.refused = refusal.reason
        if self._refused != key:  # once per file, not at every poll
            self._refused = key
            log.warning(
                "trigger_file_refused",
                path=str(self.path),
                reason=refusal.reason,
                hint="the trigger path must be a regular file; replace it with one "
                "(triggers are read again as soon as it is)",
            )

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
            await self._take(self._lines.feed(chunk), report)

    async def _follow_rotation(self, report: DrainReport) -> bool:
        """If the path now names another file, finish ours and switch; True when switched."""
        current = await asyncio.to_thread(_lstat_id, self.path)
        if current is None or current == self._file_id:
            return False  # renamed away with no successor yet: keep reading the old file
        await self._read_to_end(report)  # a writer may have appended just before the rename
        leftover = self._lines.flush()
        if leftover is not None:
            await self._take([leftover], report)
        previous = self._file_id
        self.close()
        report.rotated = True
        log.info(
            "trigger_file_rotated",
            previous_ino=previous.ino if previous else None,
            ino=current.ino,
            previous_lines=self._lines.line_no,
        )
        self._lines = LineAssembler(max_line_bytes=self._max_line_bytes)
        await self._open_current()
        if self._fd is not None:
            await self._persist()
        return self._fd is not None

    # -- a batch of lines ---------------------------------------------------------------

    async def _take(self, raws: list[RawLine], report: DrainReport) -> None:
        """Accept ``raws`` with the position after them (one ledger transaction), then
        reject or dispatch each in file order."""
        parsed = [parse_trigger_line(raw, max_line_bytes=self._max_line_bytes) for raw in raws]
        valid = [p for p in parsed if not isinstance(p, Rejection)]
        assert self._file_id is not None
        position = Position(self._file_id, self._lines.offset, self._lines.line_no)
        try:
            accepted = await asyncio.to_thread(
                self._ledger.accept, valid, position, self._clock.now()
            )
        except Exception as exc:
            self._ledger_failed(exc, position)
        self._saved = position
        if self._ledger_failing:
            self._ledger_failing = False
            log.info("trigger_ledger_writable", path=str(self.ledger_path))
        outcomes = iter(accepted)
        for raw, item in zip(raws, parsed, strict=True):
            self._stats.lines_processed += 1
            report.lines += 1
            if isinstance(item, Rejection):
                await self._reject(item, raw, report)
                continue
            trigger = next(outcomes)
            if trigger is None:
                self._stats.duplicates += 1
                report.duplicates += 1
                log.debug("trigger_duplicate", id=item.id, line_no=item.line_no)
                continue
            await self._dispatch(trigger, report)

    def _ledger_failed(self, exc: Exception, position: Position) -> NoReturn:
        # Nothing of the batch was accepted: rewind to the last accepted line, so the same
        # lines are read again once the ledger can be written.
        self._stats.ledger_failures += 1
        saved = self._saved
        if saved is not None and saved.file == self._file_id:
            offset, line_no = saved.offset, saved.line_no
        else:
            offset, line_no = 0, 0
        self._lines = LineAssembler(
            offset=offset, line_no=line_no, max_line_bytes=self._max_line_bytes
        )
        if not self._ledger_failing:
            self._ledger_failing = True
            log.error(
                "trigger_ledger_write_failed",
                path=str(self.ledger_path),
                error=f"{type(exc).__name__}: {exc}",
                line_no=line_no,
                hint="check disk space; trigger lines wait in the file and are read once the "
                "ledger can be written",
            )
        raise LedgerUnavailable(str(exc)) from exc

    async def _dispatch(self, trigger: Trigger, report: DrainReport) -> None:
        now = self._clock.now()
        if trigger.ts is not None:
            self._stats.last_lag_s = round((now - trigger.ts).total_seconds(), 3)
        kind = "refresh" if isinstance(trigger, RefreshTrigger) else "episodes"
        log.info("trigger_received", type=kind, id=trigger.id, line_no=trigger.line_no)
        try:
            if isinstance(trigger, RefreshTrigger):
                await self._on_refresh(trigger)
            else:
                await self._on_episodes(trigger)
        except Exception as exc:
            self._stats.handler_failures += 1
            report.handler_failures += 1
            log.error(
                "trigger_handler_failed",
                type=kind,
                id=trigger.id,
                line_no=trigger.line_no,
                error=f"{type(exc).__name__}: {exc}",
                hint="the trigger is kept in the ledger and runs at the next start",
                exc_info=True,
            )
            return
        self._stats.dispatched += 1
        report.dispatched += 1

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
        """Save the position when it moved without a batch (truncation, rotation)."""
        if self._file_id is None:
            return
        position = Position(self._file_id, self._lines.offset, self._lines.line_no)
        if position == self._saved:
            return
        try:
            await asyncio.to_thread(self._ledger.save_position, position)
        except Exception as exc:  # the next batch saves it with its lines
            log.warning("trigger_position_write_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self._saved = position


# -- blocking helpers (run in worker threads) ---------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    reason: str
    ino: int


def _open_regular(path: Path) -> tuple[int, FileId, int] | _Refusal | None:
    """Open ``path`` for reading when it is a regular file (never blocks, never follows a
    link); None when there is nothing at the path."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return _Refusal(_describe_mode(info.st_mode), info.st_ino)
    try:
        # O_NONBLOCK: if a FIFO was swapped in since the lstat, opening it returns at once.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _Refusal("a symbolic link", info.st_ino)
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return _Refusal(_describe_mode(info.st_mode), info.st_ino)
    return fd, FileId(info.st_dev, info.st_ino), info.st_size


def _describe_mode(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    for test, name in kinds:
        if test(mode):
            return name
    return "not a regular file"


def _read_at(fd: int, position: int) -> tuple[int, bytes]:
    """(current size, up to one chunk from ``position``); no read when the file shrank."""
    size = os.fstat(fd).st_size
    if size < position:
        return size, b""
    return size, os.pread(fd, READ_CHUNK_BYTES, position)


def _lstat_id(path: Path) -> FileId | None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return FileId(info.st_dev, info.st_ino)


__all__ = [
    "REJECTS_FILENAME",
    "DrainReport",
    "LedgerUnavailable",
    "TailStats",
    "TriggerTail",
]
