"""structlog set-up: one JSON object per line, to stdout and to per-run log files.

Processors are plain callables (structlog's model). Redaction runs before rendering, so no
secret reaches any sink: values of secret-looking keys are masked, and every registered secret
string is replaced wherever it appears (messages, exception text, tracebacks).
"""

from __future__ import annotations

import logging
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


class _RotatingFile:
    """An append-only log file rotated by size (``clmmd.log`` → ``clmmd.log.1`` …)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.handle: IO[bytes] = path.open("ab")
        self.size = self.handle.tell()

    def write(self, line: bytes) -> None:
        if self.max_bytes and self.size + len(line) > self.max_bytes:
            self.rotate()
        self.handle.write(line)
        self.handle.flush()
        self.size += len(line)

    def rotate(self) -> None:
        self.handle.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups > 0 and self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self.reopen()

    def reopen(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.handle = self.path.open("ab")
        self.size = self.handle.tell()


class LogSinks:
    """Where rendered lines go: stdout (or another stream), daemon log files, run log files.

    A run sink receives only the lines bound to its ``run_id``. Writes are serialised by a lock
    because episode steps run in worker threads too.
    """

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._lock = threading.Lock()
        self.stream: IO[bytes] | None = stream
        self._files: dict[Path, _RotatingFile] = {}
        self._runs: dict[str, IO[bytes]] = {}

    def add_file(self, path: Path, *, max_bytes: int = 50 * 1024 * 1024, backups: int = 5) -> None:
        """Also write every line to ``path``, rotated when it exceeds ``max_bytes``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if path not in self._files:
                self._files[path] = _RotatingFile(path, max_bytes, backups)

    def reopen_files(self) -> None:
        """Reopen every file sink (after an external logrotate moved them: SIGHUP)."""
        with self._lock:
            for sink in self._files.values():
                sink.reopen()

    def add_run(self, run_id: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._runs[run_id] = path.open("ab")

    def remove_run(self, run_id: str) -> None:
        with self._lock:
            handle = self._runs.pop(run_id, None)
            if handle is not None:
                handle.close()

    def close(self) -> None:
        with self._lock:
            for sink in self._files.values():
                sink.handle.close()
            for handle in self._runs.values():
                handle.close()
            self._files.clear()
            self._runs.clear()

    def write(self, line: bytes, run_id: object) -> None:
        with self._lock:
            if self.stream is not None:
                try:
                    self.stream.write(line)
                    self.stream.flush()
                except (OSError, ValueError):
                    # stdout gone (journald restarted, pipe closed): keep logging to files.
                    self.stream = None
            for sink in self._files.values():
                sink.write(line)
            if isinstance(run_id, str) and run_id in self._runs:
                handle = self._runs[run_id]
                handle.write(line)
                handle.flush()


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
