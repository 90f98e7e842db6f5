"""A fake Dune Analytics API v1 server for tests and benchmarks.

It speaks the documented shapes (execute, execution status, execution results with paging,
latest query results), requires the ``X-Dune-Api-Key`` header, records every request, and
plays scripted faults::

    async with FakeDuneServer() as srv:
        srv.configure_query(42, rows=lambda params: [{"x": 1}], polls_until_done=3)
        srv.add_faults("status", Fault.http(429, retry_after="2"), Fault.malformed())
        client = DuneClient(srv.base_url, srv.api_key, clock)
        ...
        assert srv.count("status") == 5

Executions go PENDING -> EXECUTING -> final state over ``polls_until_done`` status polls.

``POST /api/v1/sql/execute`` (Dune's Execute SQL) checks every SQL it receives: no unbound
``{{placeholder}}`` may be left and the text must parse as Trino with sqlglot; anything else is
answered 400 and kept in ``sql_rejections`` (tests assert it stays empty). Rows for a shipped
query (recognised by its ``-- clmmd query: <name>`` first line) come from ``sql_rows``, by
default clmmd's mock rows for that query and the pool address in the SQL.

Standalone: ``python -m tests.fakes.dune_server --port 8787``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

import sqlglot
from aiohttp import web

Endpoint = Literal["execute", "status", "results", "latest", "sql"]
ENDPOINTS: tuple[Endpoint, ...] = ("execute", "status", "results", "latest", "sql")
SqlRowGenerator = Callable[[str], list[dict[str, Any]]]
SQL_QUERY_ID = 0  # Dune answers raw SQL executions with query_id 0
RowGenerator = Callable[[dict[str, str]], list[dict[str, Any]]]

PENDING = "QUERY_STATE_PENDING"
EXECUTING = "QUERY_STATE_EXECUTING"
COMPLETED = "QUERY_STATE_COMPLETED"
COMPLETED_PARTIAL = "QUERY_STATE_COMPLETED_PARTIAL"
FAILED = "QUERY_STATE_FAILED"
EXPIRED = "QUERY_STATE_EXPIRED"
CANCELLED = "QUERY_STATE_CANCELLED"
CANCELED = "QUERY_STATE_CANCELED"
FINISHED = frozenset({COMPLETED, COMPLETED_PARTIAL, FAILED, EXPIRED, CANCELLED, CANCELED})
KEY_HEADER = "X-Dune-Api-Key"
PARSED_BODY = web.RequestKey("parsed_body", object)


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, consumed by the next request to its endpoint."""

    kind: Literal["http", "timeout", "malformed"]
    status: int = 500
    error: str | None = None
    retry_after: str | None = None
    seconds: float = 0.0

    @classmethod
    def http(cls, status: int, error: str | None = None, retry_after: str | None = None) -> Fault:
        """Answer ``status`` with ``{"error": error}`` (a default text if None)."""
        return cls("http", status=status, error=error, retry_after=retry_after)

    @classmethod
    def timeout(cls, seconds: float = 30.0) -> Fault:
        """Hold the request ``seconds`` (real time) before answering normally."""
        return cls("timeout", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not JSON."""
        return cls("malformed", status=200)


def default_rows(query_id: int) -> RowGenerator:
    """Five deterministic rows mentioning the query and its parameters."""

    def generate(params: dict[str, str]) -> list[dict[str, Any]]:
        return [{"query_id": query_id, "row": i, "params": dict(params)} for i in range(5)]

    return generate


def _fixed_rows(rows: list[dict[str, Any]]) -> RowGenerator:
    def generate(_params: dict[str, str]) -> list[dict[str, Any]]:
        return [dict(row) for row in rows]

    return generate


@dataclass
class QueryScript:
    """How the fake behaves for one query id."""

    rows: RowGenerator
    polls_until_done: int = 2
    final_state: str = COMPLETED
    error: Any = None
    latest_state: str = COMPLETED
    #: When the stored latest result was computed; None: "just now" (a scheduled query).
    latest_ended_at: str | None = None
    cost_credits: float | None = 3.5


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server saw it (the API key header is never kept)."""

    endpoint: str
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float
    headers: dict[str, str]
    had_valid_key: bool


@dataclass
class Execution:
    execution_id: str
    query_id: int
    parameters: dict[str, str]
    script: QueryScript
    polls: int = 0
    state: str = PENDING
    ended_at: str | None = None


class FakeDuneServer:
    """The fake API on ``127.0.0.1`` and a free port (``port=0``)."""

    def __init__(
        self,
        api_key: str = "fake-dune-key-0123456789",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.time_source = time_source
        self.requests: list[RecordedRequest] = []
        self.executions: dict[str, Execution] = {}
        self.missing_queries: set[int] = set()
        # None: next_uri points at this server. "": omit next_uri (offset paging only).
        # Anything else: next_uri on that base (to test the client's same-origin rule).
        self.next_uri_base: str | None = None
        self.sql_rows: SqlRowGenerator = shipped_sql_rows
        self.sql_script = QueryScript(rows=lambda _params: [])
        self.sql_rejections: list[str] = []
        # Extra headers on every answer (e.g. RateLimit-Limit) to test the client's reading.
        self.extra_headers: dict[str, str] = {}
        # Wall time the fake reports as executions' end (execution_ended_at); None: real now.
        self.wall_time: Callable[[], datetime] | None = None
        self._scripts: dict[int, QueryScript] = {}
        self._faults: dict[str, deque[Fault]] = {e: deque() for e in ENDPOINTS}
        self._latency: dict[str, float] = dict.fromkeys(ENDPOINTS, 0.0)
        self._execution_numbers = itertools.count(1)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ set-up

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v1"

    def configure_query(
        self,
        query_id: int,
        *,
        rows: RowGenerator | list[dict[str, Any]] | None = None,
        polls_until_done: int | None = None,
        final_state: str | None = None,
        error: Any = None,
        latest_state: str | None = None,
    ) -> QueryScript:
        """Script query ``query_id``; unspecified settings keep their current values."""
        script = self.script(query_id)
        if rows is not None:
            script.rows = rows if callable(rows) else _fixed_rows(rows)
        if polls_until_done is not None:
            script.polls_until_done = max(1, polls_until_done)
        if final_state is not None:
            script.final_state = final_state
        if error is not None:
            script.error = error
        if latest_state is not None:
            script.latest_state = latest_state
        return script

    def script(self, query_id: int) -> QueryScript:
        if query_id not in self._scripts:
            self._scripts[query_id] = QueryScript(rows=default_rows(query_id))
        return self._scripts[query_id]

    def add_faults(self, endpoint: Endpoint, *faults: Fault) -> None:
        """Queue faults; each is consumed by one request to ``endpoint``, in order."""
        self._faults[endpoint].extend(faults)

    def pending_faults(self, endpoint: Endpoint) -> int:
        return len(self._faults[endpoint])

    def set_latency(self, endpoint: Endpoint, seconds: float) -> None:
        """Real delay added to every answer of ``endpoint``."""
        self._latency[endpoint] = seconds

    def requests_to(self, endpoint: Endpoint) -> list[RecordedRequest]:
        return [r for r in self.requests if r.endpoint == endpoint]

    def count(self, endpoint: Endpoint | None = None) -> int:
        return len(self.requests if endpoint is None else self.requests_to(endpoint))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(
            "/api/v1/query/{query_id}/execute", self._wrap("execute", self._execute)
        )
        app.router.add_get(
            "/api/v1/execution/{execution_id}/status", self._wrap("status", self._status)
        )
        app.router.add_get(
            "/api/v1/execution/{execution_id}/results", self._wrap("results", self._results)
        )
        app.router.add_get("/api/v1/query/{query_id}/results", self._wrap("latest", self._latest))
        app.router.add_post("/api/v1/sql/execute", self._wrap("sql", self._sql_execute))
        self._closing.clear()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if self.port == 0 and server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._closing.set()  # releases requests held by timeout faults
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDuneServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ plumbing

    def _wrap(
        self, endpoint: Endpoint, handler: Callable[[web.Request], Any]
    ) -> Callable[[web.Request], Any]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            body: Any = None
            if request.can_read_body:
                try:
                    body = await request.json()
                except ValueError:
                    body = await request.text()
            request[PARSED_BODY] = body
            valid_key = request.headers.get(KEY_HEADER) == self.api_key
            self.requests.append(
                RecordedRequest(
                    endpoint=endpoint,
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    body=body,
                    at=self.time_source(),
                    headers={
                        k: v for k, v in request.headers.items() if k.lower() != KEY_HEADER.lower()
                    },
                    had_valid_key=valid_key,
                )
            )
            if self._latency[endpoint] > 0:
                await asyncio.sleep(self._latency[endpoint])
            if not valid_key:
                return _error(401, "invalid API Key")
            if self._faults[endpoint]:
                fault = self._faults[endpoint].popleft()
                if fault.kind == "http":
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                    return _error(
                        fault.status,
                        fault.error or _DEFAULT_TEXT.get(fault.status, "error"),
                        headers,
                    )
                if fault.kind == "malformed":
                    return web.Response(
                        status=200, text='{"execution_id": ', content_type="application/json"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), fault.seconds)
            response: web.StreamResponse = await handler(request)
            response.headers.update(self.extra_headers)
            return response

        return wrapped

    def _next_uri(self, path: str, query: dict[str, str]) -> str | None:
        if self.next_uri_base == "":
            return None
        base = self.base_url if self.next_uri_base is None else self.next_uri_base
        return f"{base}{path}?{urlencode(query)}"

    # ------------------------------------------------------------------ endpoints

    async def _execute(self, request: web.Request) -> web.Response:
        query_id = int(request.match_info["query_id"])
        if query_id in self.missing_queries:
            return _error(404, "Query not found")
        body = request.get(PARSED_BODY)
        raw_params = (body.get("query_parameters") if isinstance(body, dict) else None) or {}
        params = {str(k): str(v) for k, v in raw_params.items()}
        execution_id = f"01FAKEEXEC{next(self._execution_numbers):016d}"
        self.executions[execution_id] = Execution(
            execution_id, query_id, params, self.script(query_id)
        )
        return web.json_response({"execution_id": execution_id, "state": PENDING})

    async def _sql_execute(self, request: web.Request) -> web.Response:
        body = request.get(PARSED_BODY)
        sql = body.get("sql") if isinstance(body, dict) else None
        problem = sql_problem(sql)
        if problem is not None:
            self.sql_rejections.append(problem)
            return _error(400, problem)
        assert isinstance(sql, str)
        script = QueryScript(
            rows=lambda _params, text=sql: self.sql_rows(text),
            polls_until_done=self.sql_script.polls_until_done,
            final_state=self.sql_script.final_state,
            error=self.sql_script.error,
            cost_credits=self.sql_script.cost_credits,
        )
        execution_id = f"01FAKESQL{next(self._execution_numbers):017d}"
        self.executions[execution_id] = Execution(execution_id, SQL_QUERY_ID, {}, script)
        return web.json_response({"execution_id": execution_id, "state": PENDING})

    def _now_iso(self) -> str:
        moment = self.wall_time() if self.wall_time is not None else datetime.now(UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def _advance(self, execution: Execution) -> None:
        if execution.state in FINISHED:
            return
        execution.polls += 1
        if execution.polls >= execution.script.polls_until_done:
            execution.state = execution.script.final_state
            execution.ended_at = self._now_iso()
        else:
            execution.state = PENDING if execution.polls == 1 else EXECUTING

    async def _status(self, request: web.Request) -> web.Response:
        execution = self.executions.get(request.match_info["execution_id"])
        if execution is None:
            return _error(404, "Execution not found")
        self._advance(execution)
        answer: dict[str, Any] = {
            "execution_id": execution.execution_id,
            "query_id": execution.query_id,
            "state": execution.state,
            "is_execution_finished": execution.state in FINISHED,
            "submitted_at": "2026-01-01T00:00:00Z",
        }
        if execution.ended_at is not None:
            answer["execution_ended_at"] = execution.ended_at
            if execution.script.cost_credits is not None:
                answer["execution_cost_credits"] = execution.script.cost_credits
        if execution.state == FAILED or (execution.state in FINISHED and execution.script.error):
            answer["error"] = execution.script.error or {
                "type": "FAILED_TYPE_EXECUTION_FAILED",
                "message": "line 1:1: mismatched input 'SELEC'",
            }
        return web.json_response(answer)

    async def _results(self, request: web.Request) -> web.Response:
        execution = self.executions.get(request.match_info["execution_id"])
        if execution is None:
            return _error(404, "Execution not found")
        head = {
            "execution_id": execution.execution_id,
            "query_id": execution.query_id,
            "state": execution.state,
            "is_execution_finished": execution.state in FINISHED,
        }
        if execution.ended_at is not None:
            head["execution_ended_at"] = execution.ended_at
        if execution.state not in (COMPLETED, COMPLETED_PARTIAL):
            return web.json_response(head)
        rows = execution.script.rows(execution.parameters)
        return self._page(request, head, rows, execution.state, {})

    async def _latest(self, request: web.Request) -> web.Response:
        query_id = int(request.match_info["query_id"])
        if query_id in self.missing_queries:
            return _error(404, "Query not found")
        script = self.script(query_id)
        params = {
            k[len("params.") :]: v for k, v in request.query.items() if k.startswith("params.")
        }
        head = {
            "execution_id": f"01FAKELATEST{query_id:014d}",
            "query_id": query_id,
            "state": script.latest_state,
            "is_execution_finished": True,
            "execution_ended_at": script.latest_ended_at or self._now_iso(),
        }
        if script.latest_state not in (COMPLETED, COMPLETED_PARTIAL):
            return web.json_response(head)
        keep = {f"params.{k}": v for k, v in params.items()}
        return self._page(request, head, script.rows(params), script.latest_state, keep)

    def _page(
        self,
        request: web.Request,
        head: dict[str, Any],
        rows: list[dict[str, Any]],
        state: str,
        keep: dict[str, str],
    ) -> web.Response:
        allow_partial = request.query.get("allow_partial_results") == "true"
        if state == COMPLETED_PARTIAL and not allow_partial:
            return _error(400, "Partial Result, please request with 'allows_partial_results=true'")
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query["limit"]) if "limit" in request.query else len(rows)
        page = rows[offset : offset + limit]
        answer = dict(head)
        answer["result"] = {
            "rows": page,
            "metadata": {
                "column_names": list(rows[0].keys()) if rows else [],
                "row_count": len(page),
                "total_row_count": len(rows),
                "result_set_bytes": 64 * len(rows),
                "datapoint_count": len(page) * (len(rows[0]) if rows else 0),
                "pending_time_millis": 5,
                "execution_time_millis": 42,
            },
        }
        next_offset = offset + limit
        if limit > 0 and next_offset < len(rows):
            query = {**keep, "limit": str(limit), "offset": str(next_offset)}
            if allow_partial:
                query["allow_partial_results"] = "true"
            answer["next_offset"] = next_offset
            next_uri = self._next_uri(request.path.removeprefix("/api/v1"), query)
            if next_uri is not None:
                answer["next_uri"] = next_uri
        return web.json_response(answer)


_DEFAULT_TEXT = {
    400: "Bad Request",
    401: "invalid API Key",
    402: "This api request would exceed your configured datapoint limit per billing cycle.",
    403: "Not allowed to execute query. Query is archived, unsaved or not enough permissions.",
    404: "Query not found",
    409: "Conflict",
    429: "Too many requests",
    500: "An internal error occurred",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def sql_problem(sql: object) -> str | None:
    """Why Dune would refuse (or fail) this SQL, or None: unbound parameters, not Trino."""
    if not isinstance(sql, str) or not sql.strip():
        return "sql: a non-empty string is required"
    unbound = _PLACEHOLDER.search(sql)
    if unbound is not None:
        return f"sql: unbound parameter {unbound.group(0)}"
    try:
        sqlglot.parse_one(sql, read="trino")
    except sqlglot.errors.ParseError as exc:
        return f"sql: does not parse as Trino: {str(exc).splitlines()[0][:200]}"
    return None


def shipped_sql_rows(sql: str) -> list[dict[str, Any]]:
    """clmmd's mock rows for the shipped query this SQL came from (pool taken from the SQL)."""
    from clmmd.scheduler.shipped_sql import query_name_of

    name = query_name_of(sql)
    if name is None:
        return [{"row": i} for i in range(3)]
    pool = _ADDRESS.search(sql)
    return shipped_rows(name, pool.group(0) if pool else None)


def shipped_rows(name: str, pool_address: str | None = None) -> list[dict[str, Any]]:
    """clmmd's mock rows for query ``name`` (the columns its row model expects)."""
    from clmmd.artifacts.base.clock import FakeClock
    from clmmd.scheduler.mock_source import MockSource
    from clmmd.scheduler.source import FetchRequest

    request = FetchRequest(
        key=name,
        query_name=name,
        query_id=None,
        method="sql",
        pool_address=pool_address,
        window="1h" if pool_address else None,
    )
    rows: list[dict[str, Any]] = MockSource(FakeClock(), epoch=0).rows_for(request)["rows"]
    return rows


_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": text}, status=status, headers=headers)


@contextmanager
def dune_server_thread(
    api_key: str,
) -> Iterator[tuple[FakeDuneServer, asyncio.AbstractEventLoop]]:
    """The fake server on its own event-loop thread, for code that runs its own loop (the CLI,
    a daemon in another process)."""
    loop = asyncio.new_event_loop()
    server = FakeDuneServer(api_key=api_key)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield server, loop
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def main(argv: list[str] | None = None) -> None:
    """Serve the fake until interrupted (for manual runs and benchmarks)."""
    parser = argparse.ArgumentParser(description="Fake Dune API v1 server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--api-key", default="fake-dune-key-0123456789")
    args = parser.parse_args(argv)

    async def serve() -> None:
        async with FakeDuneServer(args.api_key, host=args.host, port=args.port) as srv:
            print(f"fake Dune API on {srv.base_url}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
