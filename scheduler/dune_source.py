"""The Dune implementation of :class:`~scheduler.source.IntelSource`.

``sql`` keys run the query's shipped SQL, bound to the key's pool and window, through the
Execute SQL endpoint; ``execute`` and ``latest`` keys use the operator's saved query. A
``latest`` result older than the key's ``reexecute_after_s`` is re-executed, as the official
SDK's ``get_latest_result(max_age_hours=...)`` does; otherwise it is stored as it is, with its
real as-of time, and the cache reports it ``too_old`` when it is older than the key's max age.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.scheduler.cache import Envelope
from clmmd.scheduler.credits import DEFAULT_RESULT_BYTES, ENGINE_CREDITS, export_credits
from clmmd.scheduler.dune import ParamValue
from clmmd.scheduler.quality import age_seconds
from clmmd.scheduler.shipped_sql import QueryParameterError, bind_for_key
from clmmd.scheduler.source import FetchRequest, FetchResult, IntelFetchError, SourceName

log = structlog.get_logger(__name__)


class DuneApi(Protocol):
    """What :class:`DuneSource` needs of a client (``DuneClient`` provides it)."""

    async def execute_query(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]: ...

    async def execute_sql(
        self, sql: str, *, label: str = "sql", deadline_s: float | None = None
    ) -> dict[str, Any]: ...

    async def latest_results(
        self, query_id: int, parameters: Mapping[str, ParamValue] | None = None
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class DuneSource:
    """Fetches a cache key from Dune (see the module docstring).

    Any failure surfaces as :class:`IntelFetchError`; cancellation still propagates, so a
    shutting-down refresher is not kept waiting.
    """

    def __init__(
        self,
        client: DuneApi,
        clock: Clock,
        *,
        performance: str = "medium",
        credits_per_mb: float = 20.0,
    ) -> None:
        self._client = client
        self._clock = clock
        self._performance = performance
        self._credits_per_mb = credits_per_mb

    async def fetch(self, request: FetchRequest) -> FetchResult:
        """Fetch ``request.key``; raises :class:`IntelFetchError` and nothing else."""
        try:
            data, source = await self._fetch(request)
        except IntelFetchError:
            raise
        except QueryParameterError as exc:
            raise IntelFetchError(f"{request.key}: {exc}", retryable=False) from None
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
        asof = data.pop("execution_ended_at", None)
        credits = data.pop("credits", None)
        return FetchResult(
            data=data,
            source=source,
            asof=asof if isinstance(asof, datetime) else None,
            credits=float(credits) if isinstance(credits, int | float) else None,
        )

    async def _fetch(self, request: FetchRequest) -> tuple[dict[str, Any], SourceName]:
        if request.method == "sql":
            sql = bind_for_key(
                request.query_name, request.pool_address, request.window, self._clock.now()
            )
            return await self._client.execute_sql(sql, label=request.key), "dune_sql"
        if request.query_id is None:
            raise IntelFetchError(f"{request.key}: no saved query id", retryable=False)
        if request.method == "execute":
            data = await self._client.execute_query(request.query_id, request.parameters)
            return data, "dune_execute"
        if request.method == "latest":
            data = await self._client.latest_results(request.query_id, request.parameters)
            ended = data.get("execution_ended_at")
            limit = request.reexecute_after_s
            if limit is not None and isinstance(ended, datetime):
                age = age_seconds(ended, self._clock.now())
                if age > limit:
                    log.info(
                        "dune_latest_too_old_reexecuting",
                        key=request.key,
                        age_s=round(age),
                        reexecute_after_s=limit,
                    )
                    read_cost = data.get("credits") or 0.0
                    data = await self._client.execute_query(request.query_id, request.parameters)
                    data["credits"] = (data.get("credits") or 0.0) + read_cost
                    return data, "dune_execute"
            return data, "dune_latest"
        raise IntelFetchError(
            f"{request.key}: unknown fetch method {request.method!r}", retryable=False
        )

    def estimate_credits(self, request: FetchRequest, previous: Envelope | None) -> float:
        """What fetching ``request`` will likely cost: an execution (unless ``latest``) plus
        reading a result as large as the key's last one."""
        size = DEFAULT_RESULT_BYTES
        if previous is not None and previous.data is not None:
            metadata = previous.data.get("metadata")
            known = metadata.get("result_set_bytes") if isinstance(metadata, dict) else None
            if isinstance(known, int) and not isinstance(known, bool) and known >= 0:
                size = known
        read = export_credits(size, self._credits_per_mb)
        if request.method == "latest":
            return read
        return ENGINE_CREDITS.get(self._performance, ENGINE_CREDITS["medium"]) + read

    async def close(self) -> None:
        """Close the underlying client (idempotent)."""
        await self._client.close()
