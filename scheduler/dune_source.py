"""The Dune implementation of :class:`~scheduler.source.IntelSource`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from clmmd.scheduler.dune import ParamValue
from clmmd.scheduler.source import FetchRequest, FetchResult, IntelFetchError

log = structlog.get_logger(__name__)


class DuneApi(Protocol):
    """What :class:`DuneSource` needs of a client (``DuneClient`` provides it)."""

    async def execute_query(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]: ...

    async def latest_results(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class DuneSource:
    """Fetches a cache key from Dune: executes the query or reads its latest results.

    Any failure surfaces as :class:`IntelFetchError`; cancellation still propagates, so a
    shutting-down refresher is not kept waiting.
    """

    def __init__(self, client: DuneApi) -> None:
        self._client = client

    async def fetch(self, request: FetchRequest) -> FetchResult:
        """Fetch ``request.key``; raises :class:`IntelFetchError` and nothing else."""
        try:
            if request.method == "execute":
                data = await self._client.execute_query(request.query_id, request.parameters)
                return FetchResult(data=data, source="dune_execute")
            if request.method == "latest":
                data = await self._client.latest_results(request.query_id, request.parameters)
                return FetchResult(data=data, source="dune_latest")
            raise IntelFetchError(
                f"{request.key}: unknown fetch method {request.method!r}", retryable=False
            )
        except IntelFetchError:
            raise
        except Exception as exc:
            # A bug or an unforeseen library error must not escape as a different type: the
            # refresher only knows IntelFetchError. The text names the type for debugging.
            log.error(
                "dune_fetch_unexpected_error",
                key=request.key,
                error_type=type(exc).__name__,
                error=str(exc)[:300],
                hint="a bug, not a Dune error: report it; the key keeps its last good data",
            )
            raise IntelFetchError(
                f"{request.key}: unexpected {type(exc).__name__} while fetching from Dune: "
                f"{str(exc)[:300]}",
                retryable=True,
            ) from None

    async def close(self) -> None:
        """Close the underlying client (idempotent)."""
        await self._client.close()
