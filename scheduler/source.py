"""Where a refresh fetches one cache key from: Dune, or the deterministic mock source.

The refresher only knows this interface; tests swap a fake in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

SourceName = Literal["dune_sql", "dune_execute", "dune_latest", "mock"]


@dataclass(frozen=True)
class FetchRequest:
    """One cache key to fetch.

    ``parameters`` are the saved query's Dune parameters (already including the pool address
    and the lookback window for pool-scoped queries); ``query_id`` is None for ``sql`` (the
    shipped SQL is bound from ``pool_address`` and ``window``).
    """

    key: str
    query_name: str
    query_id: int | None
    method: Literal["sql", "execute", "latest"]
    parameters: Mapping[str, str | int | float] = field(default_factory=dict)
    pool_address: str | None = None
    window: str | None = None
    reexecute_after_s: int | None = None


@dataclass(frozen=True)
class FetchResult:
    """A successful fetch. ``data`` is what the cache envelope stores under ``data``.

    ``data`` always has ``rows`` (a list of row objects) and ``partial`` (true when Dune
    answered QUERY_STATE_COMPLETED_PARTIAL: rows are there but incomplete). ``asof`` is when
    the source computed the rows (Dune's ``execution_ended_at``; None: now). ``credits`` is
    what the fetch cost (None: nothing known).
    """

    data: dict[str, Any]
    source: SourceName
    asof: datetime | None = None
    credits: float | None = None


class IntelFetchError(Exception):
    """A fetch failed. ``message`` is safe to log and store (never contains a secret).

    ``retryable`` tells whether trying again later could help; ``status`` is the HTTP status
    when there was one.
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


class IntelSource(Protocol):
    """Fetches one key. Raises :class:`IntelFetchError` on failure, never anything else."""

    async def fetch(self, request: FetchRequest) -> FetchResult: ...

    async def close(self) -> None:
        """Release connections (idempotent)."""
        ...
