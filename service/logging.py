"""structlog set-up: one JSON object per line, to stdout and to per-run log files.

Processors are plain callables (structlog's model). Redaction runs before rendering, so no
secret reaches any sink: values of secret-looking keys are masked, and every registered secret
string is replaced wherever it appears (messages, exception text, tracebacks).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO, Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

_MASK = "***"
_SECRET_KEY_PARTS = ("api_key", "apikey", "password", "secret", "token", "authorization")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class SecretRedactor:
    """Masks secret values. Register the actual secret strings with :meth:`register`."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def register(self, secret: str | None) -> None:
        # Very short strings would mask innocent text everywhere; real keys are long.
        if secret and len(secret) >= 6:
            self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def _clean(self, key: str, value: Any) -> Any:
        if any(part in key.lower() for part in _SECRET_KEY_PARTS) and value not in (
            None,
            "set",
            "NOT SET",
        ):
            return _MASK
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean(key, v) for v in value]
        return value

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        return {k: self._clean(k, v) for k, v in event_dict.items()}


REDACTOR = SecretRedactor()


class _FileSink:
    """An append-only log file. A write that fails (disk full, quota, I/O error) drops that
    line and never raises: logging must not take down the code that logs. Writes are
    unbuffered, so a failed write leaves nothing queued to fail again at the next flush; the
    first write that succeeds afterwards first records how many lines were dropped and why."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.size = 0
        self.dropped = 0
        self.error: str | None = None  # why lines are being dropped (None: writing fine)
        self._torn = False  # a short write left a partial line at the end of the file
        self.reopen()

    def reopen(self) -> None:
        """(Re)open ``path`` for appending (after logrotate moved it away: SIGHUP)."""
        self.close()
        try:
            self.fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
            self.size = os.fstat(self.fd).st_size
        except OSError as exc:
            self._failed(exc)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def write(self, line: bytes) -> None:
        if self.fd is None:
            self.reopen()
            if self.fd is None:
                self.dropped += 1
                return
        data = line
        if self.dropped:
            data = _dropped_notice(self.dropped, self.error) + data
        if self._torn:
            data = b"\n" + data
        try:
            written = os.write(self.fd, data)
        except OSError as exc:
            self._failed(exc)
            return
        self.size += written
        if written < len(data):  # the disk filled during this very write
            self._torn = True
            self._failed(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            return
        self._torn = False
        self.dropped = 0
        self.error = None

    def _failed(self, exc: OSError) -> None:
        self.dropped += 1
        self.error = f"{exc.strerror or exc}"


def _dropped_notice(count: int, error: str | None) -> bytes:
    """The line a log file gets when it can be written again after dropping ``count``."""
    notice = {
        "event": "log_lines_dropped",
        "level": "warning",
        "count": count,
        "error": error,
        "hint": "the log file could not be written (disk full?); those lines are lost here",
    }
    return orjson.dumps(notice) + b"\n"


class _RotatingFile(_FileSink):
    """A log file rotated by size (``clmmd.log`` → ``clmmd.log.1`` …)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.max_bytes = max_bytes
        self.backups = backups
        super().__init__(path)

    def write(self, line: bytes) -> None:
        if self.max_bytes and self.size + len(line) > self.max_bytes:
            self.rotate()
        super().write(line)

    def rotate(self) -> None:
        self.close()
        try:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            if self.backups > 0 and self.path.exists():
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        except OSError as exc:  # keep appending to the current file
            self._failed(exc)
            self.dropped -= 1  # nothing was dropped by a failed rotation
        self.reopen()


#: stdout errors after which it is gone for good (closed pipe); others (a full disk under a
#: redirected stdout) only drop the line.
_STREAM_GONE = (errno.EPIPE, errno.EBADF, errno.ECONNRESET)


class LogSinks:
    """Where rendered lines go: stdout (or another stream), daemon log files, run log files.

    A run sink receives only the lines bound to its ``run_id``. Writes are serialised by a lock
    because episode steps run in worker threads too. No write here ever raises.
    """

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._lock = threading.Lock()
        self.stream: IO[bytes] | None = stream
        self._files: dict[Path, _RotatingFile] = {}
        self._runs: dict[str, _FileSink] = {}

    def add_file(self, path: Path, *, max_bytes: int = 50 * 1024 * 1024, backups: int = 5) -> None:
        """Also write every line to ``path``, rotated when it exceeds ``max_bytes``."""
        with contextlib.suppress(OSError):  # else the sink reports it (failing())
            path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if path not in self._files:
                self._files[path] = _RotatingFile(path, max_bytes, backups)

    def reopen_files(self) -> None:
        """Reopen every file sink, run logs included (after logrotate moved them: SIGHUP)."""
        with self._lock:
            for sink in [*self._files.values(), *self._runs.values()]:
                sink.reopen()

    def add_run(self, run_id: str, path: Path) -> None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._runs[run_id] = _FileSink(path)

    def remove_run(self, run_id: str) -> None:
        with self._lock:
            sink = self._runs.pop(run_id, None)
            if sink is not None:
                sink.close()

    def close(self) -> None:
        with self._lock:
            for sink in [*self._files.values(), *self._runs.values()]:
                sink.close()
            self._files.clear()
            self._runs.clear()

    def failing(self) -> dict[str, str]:
        """Log files currently dropping lines: path → why (for health reports)."""
        with self._lock:
            sinks = [*self._files.values(), *self._runs.values()]
            return {str(s.path): f"{s.error} ({s.dropped} lines dropped)" for s in sinks if s.error}

    def write(self, line: bytes, run_id: object) -> None:
        with self._lock:
            if self.stream is not None:
                try:
                    self.stream.write(line)
                    self.stream.flush()
                except ValueError:  # closed
                    self.stream = None
                except OSError as exc:
                    # stdout gone (journald restarted, pipe closed): keep logging to files.
                    if exc.errno in _STREAM_GONE:
                        self.stream = None
            for sink in self._files.values():
                sink.write(line)
            if isinstance(run_id, str) and run_id in self._runs:
                self._runs[run_id].write(line)


SINKS = LogSinks()


def _render_to_sinks(logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
    line = orjson.dumps(event_dict, default=str) + b"\n"
    SINKS.write(line, event_dict.get("run_id"))
    raise structlog.DropEvent


def _rename_event(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    # Keep "event" (structlog's key) and add the level under a stable name for jq filters.
    event_dict.setdefault("level", name)
    return event_dict


def configure_logging(level: str = "info", stream: IO[bytes] | None = None) -> None:
    """Configure structlog once for the process (idempotent; tests call it again freely)."""
    SINKS.stream = stream if stream is not None else sys.stdout.buffer
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _rename_event,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.dict_tracebacks,
            REDACTOR,
            _render_to_sinks,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )


def bind_context(**values: Any) -> None:
    """Bind values (run_id, episode_id) to every log line of the current task."""
    structlog.contextvars.bind_contextvars(**values)
