"""Why an episode was lost (ended without even an artifact folder), as a small fixed code.

Used by the daemon (metrics label ``reason`` of ``clmmd_episodes_lost_total``, health) and by
campaigns (which stop once the disk is full rather than lose every remaining episode).
"""

from __future__ import annotations

import errno
import sqlite3

#: Why an episode was lost (metric label values: a small fixed set).
LOST_REASONS = ("disk_full", "io_error", "other")
_FULL = (errno.ENOSPC, errno.EDQUOT)


def lost_reason(exc: BaseException) -> str:
    """The :data:`LOST_REASONS` code of the error that lost an episode."""
    if isinstance(exc, OSError):
        return "disk_full" if exc.errno in _FULL else "io_error"
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return "disk_full"
    return "other"


def describe(exc: BaseException) -> str:
    """A short text of ``exc`` for logs and health reasons (the OS message when there is one)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


__all__ = ["LOST_REASONS", "describe", "lost_reason"]
