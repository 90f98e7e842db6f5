"""Writer processes: apply the :class:`EpisodeWrite` batches read from a pipe, one at a time.

    python -m clmmd.artifacts.write_worker PARENT_PID R:W [R:W ...]

Each ``R:W`` is a pair of inherited pipe descriptors: batches arrive on R, replies leave on W.
The process started serves the last pair itself and forks one copy of itself per other pair
(a fork of a single-threaded process that has imported everything costs 1-2 ms here, a fresh
interpreter with its imports 50-70 ms), then reaps those copies when its own pipe ends.

Why processes, and single-threaded ones: a durable write is some thirty system calls, and a
thread of the campaign gives up the GIL at each and waits to get it back from the event loop,
busy computing the next episodes; writer threads in one process of their own still hand the
GIL to each other at every call. A process per concurrent write has no GIL to share
(docs/performance.md, "Durable writes in writer processes").

Protocol (both ways): a 4-byte big-endian length, then a pickle. A request is ``(id, batch)``;
its reply ``(id, None)`` once written, else ``(id, the exception it raised)``. Only our own
parent talks to us over these pipes, so unpickling is no wider trust than its own memory.

No writer outlives the campaign: on Linux the kernel kills each when its parent dies
(``PR_SET_PDEATHSIG``), elsewhere it stops before a batch when its parent pid changed. A dead
campaign's successor recovers its unfinished episodes, and a write landing after that would make
a folder hold both failure.json and result.json. SIGINT and SIGTERM are ignored: Ctrl-C in a
terminal and systemd's stop signal reach the whole group, and the campaign decides when writing
ends (it closes the pipes once its last episode is written).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
from typing import BinaryIO

from clmmd.artifacts.episode_write import EpisodeWrite, FolderNotMadeError, apply_episode_write

_HEADER = struct.Struct(">I")
#: Bytes of a message's length prefix.
HEADER_SIZE = _HEADER.size
_PR_SET_PDEATHSIG = 1


def frame(obj: object) -> bytes:
    """``obj`` as one message: its length, then its pickle."""
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def body_size(header: bytes) -> int:
    """The length a message's header announces."""
    (size,) = _HEADER.unpack(header)
    return int(size)


def read_message(stream: BinaryIO) -> object | None:
    """The next message on ``stream``; None at its end (the parent closed it)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    message: object = pickle.loads(stream.read(body_size(header)))
    return message


def reply_for(request_id: int, exc: BaseException | None) -> bytes:
    """The reply to batch ``request_id``: ``None``, the exception, or (when that does not
    pickle) an exception of the same kind that does."""
    try:
        return frame((request_id, exc))
    except Exception:
        if isinstance(exc, FolderNotMadeError):
            plain = OSError(f"{type(exc.error).__name__}: {exc.error}")
            return frame((request_id, FolderNotMadeError(plain)))
        return frame((request_id, OSError(f"{type(exc).__name__}: {exc}")))


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes  # here: only Linux needs it, and it costs a writer's start-up

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def serve(parent_pid: int, requests: BinaryIO, replies: BinaryIO) -> int:
    """Apply each ``(id, batch)`` read from ``requests`` and answer on ``replies``, until the
    end of ``requests`` (0) or the parent is gone (1)."""
    while (message := read_message(requests)) is not None:
        if os.getppid() != parent_pid:
            return 1
        request_id, write = _request(message)
        error: BaseException | None = None
        if write is None:
            error = TypeError(f"not an (id, EpisodeWrite) request: {type(message).__name__}")
        else:
            try:
                apply_episode_write(write)
            except Exception as exc:
                error = exc
        replies.write(reply_for(request_id, error))
        replies.flush()
    return 0


def _request(message: object) -> tuple[int, EpisodeWrite | None]:
    """``(id, batch)`` of a request; batch None when the message is not one."""
    if isinstance(message, tuple) and len(message) == 2 and isinstance(message[0], int):
        request_id, write = message
        return request_id, write if isinstance(write, EpisodeWrite) else None
    return -1, None


def _serve_pair(parent_pid: int, pair: tuple[int, int]) -> int:
    with os.fdopen(pair[0], "rb") as requests, os.fdopen(pair[1], "wb") as replies:
        return serve(parent_pid, requests, replies)


def parse_pairs(args: list[str]) -> list[tuple[int, int]]:
    """``["R:W", ...]`` as descriptor pairs."""
    pairs = []
    for arg in args:
        read_fd, write_fd = arg.split(":")
        pairs.append((int(read_fd), int(write_fd)))
    return pairs


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent_pid, pairs = int(argv[1]), parse_pairs(argv[2:])
    _die_with_parent()
    if os.getppid() != parent_pid or not pairs:  # the parent died before the line above
        return 1
    sys.stdout = sys.stderr  # a stray print must never reach a pipe
    copies = []
    own = os.getpid()
    for index, pair in enumerate(pairs[:-1]):
        pid = os.fork()
        if pid == 0:  # a copy: serves its pair only, and never returns into this loop
            status = 1
            try:
                for later in pairs[index + 1 :]:  # earlier pairs are closed already
                    for fd in later:
                        os.close(fd)
                _die_with_parent()
                if os.getppid() == own:
                    status = _serve_pair(own, pair)
            finally:
                os._exit(status)
        copies.append(pid)
        for fd in pair:
            os.close(fd)
    status = _serve_pair(parent_pid, pairs[-1])
    for pid in copies:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
