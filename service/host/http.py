"""The daemon's small HTTP endpoint: ``/healthz``, ``/metrics`` and ``/status``.

It binds 127.0.0.1 by default: the status document describes the deployment, so exposing it
wider is an explicit operator choice (``CLMMD_HTTP_LISTEN``). Whatever a status provider
returns passes through the log redactor before it is served (secret-looking keys masked,
registered secret strings replaced), and errors are reported by type only, so a bug in a
provider cannot publish a credential.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from clmmd.service.host.metrics import ServiceMetrics
from clmmd.service.logging import REDACTOR, SecretRedactor

log = structlog.get_logger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9321

StatusProvider = Callable[[], Mapping[str, Any]]
#: Returns the reasons the service is not healthy; an empty sequence means healthy.
HealthCheck = Callable[[], Sequence[str]]


class StatusServer:
    """An aiohttp app serving the three endpoints; ``start``/``stop`` manage the listener."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        status_provider: StatusProvider,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        health: HealthCheck | None = None,
        on_scrape: Callable[[], None] | None = None,
        redactor: SecretRedactor = REDACTOR,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535, got {port}")
        self._metrics = metrics
        self._status_provider = status_provider
        self._health = health
        self._on_scrape = on_scrape
        self._redactor = redactor
        self.host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics_page)
        self.app.router.add_get("/status", self._status)

    @property
    def port(self) -> int:
        """The bound port once started (the real one when 0 was asked for)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Bind and serve; an ``OSError`` (port in use, bad address) reaches the caller."""
        if self._runner is not None:
            raise RuntimeError("StatusServer already started")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])
        log.info("http_listening", host=self.host, port=self._port)

    async def stop(self) -> None:
        """Stop listening (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("http_stopped", port=self._port)

    # -- handlers ------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        reasons: list[str] = []
        if self._health is not None:
            try:
                reasons = [str(r) for r in self._health()]
            except Exception as exc:
                log.error(
                    "health_check_failed",
                    error=self._describe(exc),
                    hint="a bug in the health check; /healthz answers 503 until it is fixed",
                )
                reasons = [f"health check raised {type(exc).__name__}"]
        if reasons:
            return self._json({"status": "degraded", "reasons": reasons}, status=503)
        return self._json({"status": "ok"})

    async def _metrics_page(self, request: web.Request) -> web.Response:
        if self._on_scrape is not None:
            try:
                self._on_scrape()
            except Exception as exc:  # stale gauges beat no metrics at all
                log.error(
                    "metrics_scrape_hook_failed",
                    error=self._describe(exc),
                    hint="gauges may be stale; counters are still served",
                )
        body = await asyncio.to_thread(self._metrics.exposition)  # process_* reads /proc
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, request: web.Request) -> web.Response:
        try:
            payload = dict(self._status_provider())
        except Exception as exc:
            log.error(
                "status_provider_failed",
                error=self._describe(exc),
                hint="use `clmmd status` (reads the cache directly) meanwhile",
            )
            return self._json(
                {"status": "error", "error": f"status unavailable ({type(exc).__name__})"},
                status=500,
            )
        return self._json(payload)

    def _describe(self, exc: BaseException) -> str:
        # The logging set-up scrubs the secrets it knows; scrub ours too before logging.
        return self._redactor.scrub(f"{type(exc).__name__}: {exc}")

    def _json(self, payload: Mapping[str, Any], *, status: int = 200) -> web.Response:
        cleaned = self._redactor(None, "http", dict(payload))
        # default=str keeps odd values servable; scrub again, since str() of an object can
        # carry a secret that was not a plain string field.
        text = orjson.dumps(
            cleaned, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_INDENT_2
        ).decode()
        return web.Response(
            text=self._redactor.scrub(text), status=status, content_type="application/json"
        )


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "HealthCheck", "StatusProvider", "StatusServer"]
