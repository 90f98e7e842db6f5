"""``WriterProcesses``: a durable campaign's episode writes, applied in writer processes.

A durable write waits on the disk (several fsyncs). In a thread of this process it also waits
for the GIL at each of its system calls, which the event loop holds while it computes the next
episodes: measured, writes in threads keep under half their pace beside a busy loop, writes in
processes most of it (docs/performance.md, "Durable writes in writer processes"). So a durable
campaign hands each encoded :class:`EpisodeWrite` over a pipe to one of ``size`` single-threaded
writers (``clmmd.artifacts.write_worker``: one interpreter starts, the others are forks of it).

The loop's share is a non-blocking pipe write and, later, the reply: no thread of this process
is involved. The writers start in the background (:meth:`start`, or the first batch) and end
when :meth:`close` closes their pipes, once every batch is answered; batches that come before
they are up are written by a thread, as without them. A batch goes to the writer with the
fewest in hand; an episode awaits each of its batches before the next, so they land in order.

A writer that dies fails the batches it held with :class:`WriterProcessDied` (whether they
landed is unknown: recovery completes those folders); the others go on, and once none is left
the next batch starts a new set.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import structlog

from clmmd.artifacts.base.waiting import settle
from clmmd.artifacts.episode_write import EpisodeWrite, apply_episode_write
from clmmd.artifacts.write_worker import HEADER_SIZE, body_size, frame

log = structlog.get_logger(__name__)


#: What a writer's environment keeps of the campaign's: how to find Python and our package,
#: and the locale. Nothing else: credentials (Dune, Gateway, systemd's) never reach a process
#: that only writes files.
_KEPT_VARIABLES = frozenset({"PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT"})


def writer_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a writer process starts with (see ``_KEPT_VARIABLES``)."""
    return {
        name: value
        for name, value in environ.items()
        if name in _KEPT_VARIABLES or name.startswith(("PYTHON", "LC_"))
    }


def _same(writer: _Writer) -> _Writer:
    """The protocol factory of a writer's reply pipe: that writer."""
    return writer


class WriterProcessDied(OSError):
    """The writer holding a batch exited before answering (the batch's state is unknown)."""


class _Writer(asyncio.Protocol):
    """One writer's pipes, seen from the campaign: batches go out on ``requests``; replies
    come back on the other pipe and answer their futures as they arrive.

    A protocol rather than a reader task: a reply then costs the loop one callback, not the
    wake-ups of a task reading its header and body (one or two batches an episode).
    """

    def __init__(self, on_gone: Callable[[_Writer], None]) -> None:
        self.requests: asyncio.WriteTransport | None = None
        self.pending: dict[int, asyncio.Future[None]] = {}
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_gone = on_gone
        self._buffer = bytearray()
        self._replies: asyncio.ReadTransport | None = None

    def close_pipes(self) -> None:
        """Close both pipes (a reply pipe's transport then reports the end as usual)."""
        if self.requests is not None:
            self.requests.close()
        if self._replies is not None:
            self._replies.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self._replies = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        try:
            while len(buffer) >= HEADER_SIZE:
                end = HEADER_SIZE + body_size(bytes(buffer[:HEADER_SIZE]))
                if len(buffer) < end:
                    break
                request_id, error = pickle.loads(buffer[HEADER_SIZE:end])
                del buffer[:end]
                settle(self.pending.pop(request_id), None, error)
        except Exception as exc:  # a reply we cannot read: this writer is not trusted further
            log.error(
                "episode_writer_unreadable",
                error=repr(exc),
                hint="a bug (please report it): that writer is no longer used",
            )
            self._on_gone(self)  # at once: closing the pipe reports the loss a turn later
            assert self._replies is not None
            self._replies.close()  # connection_lost follows: its batches fail there

    def connection_lost(self, exc: Exception | None) -> None:
        # It exited (expected after close), or its replies could not be read: either way it
        # takes no more batches, and those it held fail.
        self._on_gone(self)
        if self.requests is not None:
            self.requests.close()
        if self.pending:
            log.error(
                "episode_writer_died",
                batches=len(self.pending),
                hint="the next start's recovery completes the episodes it held",
            )
            pending, self.pending = self.pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(
                        WriterProcessDied("an episode writer process exited before answering")
                    )
        if not self.gone.done():
            self.gone.set_result(None)


async def _abandon(
    process: asyncio.subprocess.Process,
    writers: list[_Writer],
    files: Sequence[tuple[BinaryIO, BinaryIO]],
) -> None:
    """Undo a start whose pipes could not all be connected: every pipe of ours closed, the
    writer processes killed and reaped, so a failed start leaves nothing behind."""
    for writer in writers:
        writer.close_pipes()
    for requests, replies in files:
        requests.close()
        replies.close()
    with contextlib.suppress(ProcessLookupError):
        process.kill()  # its copies die with it (PDEATHSIG), or at their first batch
    await process.wait()


@dataclass
class _Group:
    """The writers one start made, and the process that started them (it reaps the others)."""

    process: asyncio.subprocess.Process
    writers: list[_Writer]


class WriterProcesses:
    """Applies :class:`EpisodeWrite` batches in ``size`` writer processes."""

    def __init__(self, size: int, *, close_timeout_s: float = 30.0) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self.close_timeout_s = close_timeout_s
        self.starts = 0  # groups started so far (tests)
        self._groups: list[_Group] = []
        self._live: list[_Writer] = []
        self._starting: asyncio.Task[None] | None = None
        self._ids = 0
        self._closed = False
        self._start_failed = False

    @property
    def pid(self) -> int | None:
        """The pid of the newest group's first writer (tests)."""
        return self._groups[-1].process.pid if self._groups else None

    def apply(self, write: EpisodeWrite) -> asyncio.Future[None]:
        """Send ``write`` to a writer process; the future ends when it is written there, or
        with what the write raised. A plain future, not a coroutine: a campaign sends one or
        two batches an episode, and a task around each costs the loop more than the send.

        Until the writers are up (a fresh interpreter takes tens of milliseconds), or if they
        could not start, the batch is written by a thread of this process instead: the same
        function, only slower beside a busy loop.
        """
        if self._closed:
            raise RuntimeError("the writer processes are closed")
        self.start()
        if not self._live:
            return asyncio.ensure_future(asyncio.to_thread(apply_episode_write, write))
        writer = min(self._live, key=lambda w: len(w.pending))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ids += 1
        # Nothing yields from here to the pipe write: the reader cannot give the writer up in
        # between, so this future is answered or failed by it.
        writer.pending[self._ids] = future
        assert writer.requests is not None
        writer.requests.write(frame((self._ids, write)))
        return future

    def start(self) -> None:
        """Start the writers in the background unless they run or are starting (after every
        one has died: a new set). A campaign calls this before opening its run, so the
        interpreter boots meanwhile."""
        if self._closed or self._live or self._start_failed:
            return
        if self._starting is None or self._starting.done():
            self._starting = asyncio.create_task(self._start(), name="episode-writers-start")

    async def ready(self) -> bool:
        """Wait for a start under way; whether writers are up (tests, the bench)."""
        self.start()
        if self._starting is not None:
            await asyncio.wait([self._starting])
        return bool(self._live)

    async def _start(self) -> None:
        try:
            await self._spawn()
        except Exception as exc:
            self._start_failed = True
            log.error(
                "episode_writers_not_started",
                error=f"{type(exc).__name__}: {exc}",
                hint="durable writes run in threads of the campaign instead (slower)",
            )

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        theirs: list[int] = []
        ours: list[tuple[int, int]] = []
        try:
            for _ in range(self.size):
                request_r, request_w = os.pipe()
                reply_r, reply_w = os.pipe()
                theirs += [request_r, reply_w]
                ours.append((request_w, reply_r))
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "clmmd.artifacts.write_worker",
                str(os.getpid()),
                *(f"{theirs[i]}:{theirs[i + 1]}" for i in range(0, len(theirs), 2)),
                pass_fds=theirs,
                stdin=asyncio.subprocess.DEVNULL,
                env=writer_environment(os.environ),
            )
        except BaseException:
            for fd in theirs + [fd for pair in ours for fd in pair]:
                os.close(fd)
            raise
        for fd in theirs:
            os.close(fd)
        self.starts += 1
        # Every descriptor of ours gets its file object now: whatever fails below, closing
        # these (idempotent, also once a transport holds one) leaves none open.
        files = [
            (os.fdopen(request_w, "wb", buffering=0), os.fdopen(reply_r, "rb", buffering=0))
            for request_w, reply_r in ours
        ]
        writers: list[_Writer] = []
        try:
            for requests, replies in files:
                writer = _Writer(self._gone)
                writers.append(writer)
                await loop.connect_read_pipe(functools.partial(_same, writer), replies)
                writer.requests, _ = await loop.connect_write_pipe(asyncio.Protocol, requests)
        except BaseException:
            await _abandon(process, writers, files)
            raise
        group = _Group(process, writers)
        self._groups.append(group)
        if self._closed:  # closed while they started: nothing may be handed to them
            await self._end(group)
            return
        self._live.extend(w for w in writers if not w.gone.done())

    def _gone(self, writer: _Writer) -> None:
        if writer in self._live:
            self._live.remove(writer)

    async def close(self) -> None:
        """Let the writers finish the batches they hold, then end them (killed after
        ``close_timeout_s``). New batches are refused from the call on."""
        self._closed = True
        if self._starting is not None:
            await asyncio.wait([self._starting])
        self._live = []
        groups, self._groups = self._groups, []
        await asyncio.gather(*(self._end(group) for group in groups))

    async def _end(self, group: _Group) -> None:
        for writer in group.writers:
            if writer.requests is not None:
                writer.requests.close()  # the writer's end of the pipe ends: it exits
        process = group.process
        try:
            await asyncio.wait_for(process.wait(), self.close_timeout_s)
        except TimeoutError:
            log.error(
                "episode_writer_killed",
                pid=process.pid,
                batches=sum(len(w.pending) for w in group.writers),
                hint="it did not finish its writes in time; recovery completes the episodes",
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()  # its copies die with it (Linux), or at their next batch
            await process.wait()
        await asyncio.gather(*(w.gone for w in group.writers))
