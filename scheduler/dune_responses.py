"""Reading Dune API v1 answers: execution states, error texts, and advice per HTTP status.

Pure functions over parsed JSON (no I/O), so the client in :mod:`scheduler.dune` keeps only the
protocol steps and the HTTP policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from clmmd.scheduler.dune_errors import DuneExecutionError

STATE_PENDING = "QUERY_STATE_PENDING"
STATE_EXECUTING = "QUERY_STATE_EXECUTING"
STATE_COMPLETED = "QUERY_STATE_COMPLETED"
STATE_COMPLETED_PARTIAL = "QUERY_STATE_COMPLETED_PARTIAL"
RUNNING_STATES = frozenset({STATE_PENDING, STATE_EXECUTING})
DONE_STATES = frozenset({STATE_COMPLETED, STATE_COMPLETED_PARTIAL})
# Terminal failures -> (word for the message, whether a later refresh could succeed).
# Dune's docs spell the cancelled state CANCELED; other clients use CANCELLED. Accept both.
FAILED_STATES: dict[str, tuple[str, bool]] = {
    "QUERY_STATE_FAILED": ("failed", False),
    "QUERY_STATE_EXPIRED": ("expired", True),
    "QUERY_STATE_CANCELLED": ("was cancelled", True),
    "QUERY_STATE_CANCELED": ("was cancelled", True),
}

NOT_RETRIED_STATUSES = frozenset({400, 401, 402, 403, 404, 409})
#: What an operator should check for a client-error status (appended to the message).
STATUS_ADVICE = {
    401: "the API key was rejected: check DUNE_API_KEY",
    402: "out of Dune credits: top up the plan or refresh less often",
    403: "forbidden: the API key may not run or read this query (private query or key scope)",
    404: "not found: check the query id in the registry",
    409: "conflict: Dune refused the request in the query's current state",
}


def json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is not one (garbled or another type)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def error_text(error: Any, raw: bytes = b"") -> str:
    """Dune's error text: a string, or an object with ``message`` (status of a failed run)."""
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type")
        if isinstance(message, str) and message:
            return f"{kind}: {message}" if isinstance(kind, str) and kind else message
    text = raw.decode("utf-8", "replace").strip()
    return text[:300] if text else "(no error text)"


def execution_error(where: str, state: Any, answer: Mapping[str, Any]) -> DuneExecutionError:
    """The error for an execution that ended in ``state`` (a failed or an unknown state)."""
    if isinstance(state, str) and state in FAILED_STATES:
        word, retryable = FAILED_STATES[state]
        detail = answer.get("error")
        text = f": {error_text(detail)}" if detail else ""
        return DuneExecutionError(
            f"{where} {word} ({state}){text}", state=state, retryable=retryable
        )
    shown = repr(state)[:80]
    return DuneExecutionError(
        f"{where}: unknown execution state {shown}; treating this refresh as failed",
        state=state if isinstance(state, str) else None,
        retryable=True,
    )
