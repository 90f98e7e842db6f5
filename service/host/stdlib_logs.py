"""Everything a library logs (or Python prints for an exception) goes out as JSON lines too.

structlog renders the daemon's own events; libraries log through the standard ``logging``
module, whose last-resort handler writes plain text to stderr: APScheduler's "Job raised an
exception" with a traceback, aiohttp's "Error handling request", asyncio's "Task exception was
never retrieved". :func:`route_stdlib_logging` sends those records through structlog (so they
are redacted and land on stdout and in clmmd.log like every other line), captures
``warnings.warn``, and makes uncaught exceptions in the main thread and in worker threads log
one JSON line instead of printing a traceback, so ``journalctl -o cat | jq`` never meets a
line that is not JSON.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

import structlog

_MARK = "_clmmd_json_bridge"


class _ToStructlog(logging.Handler):
    """A stdlib handler that re-emits each record as a structlog event."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = structlog.get_logger(record.name)
            fields: dict[str, object] = {"logger": record.name}
            if record.exc_info and record.exc_info[0] is not None:
                fields["exc_info"] = record.exc_info
            logger.log(record.levelno, record.getMessage(), **fields)
        except Exception:  # never raise into the library that logged
            self.handleError(record)


def route_stdlib_logging(level: int = logging.WARNING) -> None:
    """Install the bridge on the root logger (idempotent), replacing stderr handlers."""
    root = logging.getLogger()
    if any(getattr(h, _MARK, False) for h in root.handlers):
        return
    handler = _ToStructlog(level)
    setattr(handler, _MARK, True)
    for existing in list(root.handlers):  # e.g. a library's basicConfig() to stderr
        if getattr(existing, "stream", None) in (sys.stderr, sys.__stderr__):
            root.removeHandler(existing)
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    logging.captureWarnings(True)
    # A handler's own failure would print to stderr: there is nothing useful to say there.
    logging.raiseExceptions = False
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        return
    structlog.get_logger("clmmd").critical("uncaught_exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or isinstance(args.exc_value, SystemExit):
        return
    structlog.get_logger("clmmd").error(
        "uncaught_exception_in_thread",
        thread=args.thread.name if args.thread is not None else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


__all__ = ["route_stdlib_logging"]
