"""Where a refresh fetches one cache key from: Dune, or the deterministic mock source.

The refresher only knows this interface; tests swap a fake in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SourceName = Literal["dune_execute", "dune_latest", "mock"]


@dataclass(frozen=True)
class FetchRequest:
    """One cache key to fetch.

    ``parameters`` are the Dune query parameters (already including the pool address and the
    lookback window for pool-scoped queries).
    """

    key: str
    query_name: str
    query_id: int
    method: Literal["execute", "latest"]
    parameters: Mapping[str, str | int | float] = field(default_factory=dict)
    pool_address: str | None = None
    window: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """A successful fetch. ``data`` is what the cache envelope stores under ``data``.

    ``data`` always has ``rows`` (a list of row objects) and ``partial`` (true when Dune
    answered QUERY_STATE_COMPLETED_PARTIAL: rows are there but incomplete).
    """

    data: dict[str, Any]
    source: SourceName


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
