"""Errors the Dune client raises; every one is an :class:`~scheduler.source.IntelFetchError`.

``retryable`` says whether a later refresh could succeed (the refresher backs off on those);
messages never carry the API key. See ``docs/dune-client.md`` for the error table.
"""

from __future__ import annotations

from clmmd.scheduler.source import IntelFetchError


class DuneError(IntelFetchError):
    """Base of every error this client raises (all are :class:`IntelFetchError`)."""


class DuneApiError(DuneError):
    """An HTTP call failed: an error status, no answer, or an unreadable answer.

    ``status`` is None when no HTTP answer arrived (connection error, timeout). The server's
    ``{"error": ...}`` text is kept verbatim inside ``message``.
    """

    def __init__(self, status: int | None, message: str, *, retryable: bool) -> None:
        super().__init__(message, retryable=retryable, status=status)


class DuneExecutionError(DuneError):
    """The execution ended in a state with no usable rows (failed, expired, cancelled, unknown)."""

    def __init__(self, message: str, *, state: str | None, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.state = state


class DuneDeadlineError(DuneError):
    """The overall refresh deadline passed before the rows were in."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class DuneProtocolError(DuneError):
    """Dune answered 200 with JSON whose shape we do not understand."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
