"""Typed errors of the Gateway client.

Gateway answers failures with ``{"statusCode", "error", "message"}`` (its global Fastify error
handler); every error here keeps those three verbatim so the operator sees Gateway's own words.
``status`` is ``None`` when no HTTP answer arrived at all.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the Gateway client raises."""

    def __init__(self, status: int | None, error: str, message: str) -> None:
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"Gateway {where} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


class GatewayUnreachable(GatewayError):
    """No HTTP answer: connection refused, TLS failure, or the deadline passed.

    On a write this is *ambiguous*: the transaction may or may not have been sent.
    """

    def __init__(self, message: str) -> None:
        super().__init__(None, "Unreachable", message)


class GatewayBadRequest(GatewayError):
    """400: Gateway rejected the parameters (schema or connector validation)."""


class GatewayAuthError(GatewayError):
    """401/403: the API token is missing or wrong, or this client is banned for a while."""


class GatewayNotFound(GatewayError):
    """404 for a thing (pool, position, token) — not for a missing route."""


class GatewayRouteMissing(GatewayError):
    """404 because this Gateway has no such route (Fastify's ``Route GET:/... not found``)."""


class GatewayRateLimited(GatewayError):
    """429: more than Gateway's limit (100 requests/minute) from this client."""

    def __init__(self, status: int, error: str, message: str, retry_after_s: float | None) -> None:
        super().__init__(status, error, message)
        self.retry_after_s = retry_after_s


class GatewayServerError(GatewayError):
    """5xx. On a write without a transaction hash the outcome is unknown (maybe pending)."""


class GatewayResponseError(GatewayError):
    """A 2xx answer we could not read (not JSON, or a required field missing or malformed)."""

    def __init__(self, message: str, status: int | None = 200) -> None:
        super().__init__(status, "Bad Response", message)


class TransactionReverted(GatewayError):
    """The transaction was mined and reverted (receipt status 0; Gateway reports -1)."""

    def __init__(self, signature: str, reason: str) -> None:
        super().__init__(200, "Reverted", f"transaction {signature} reverted: {reason}")
        self.signature = signature
        self.reason = reason


class TransactionNotConfirmed(GatewayError):
    """A transaction stayed pending past its deadline; it may still confirm later."""

    def __init__(self, signature: str, waited_s: float) -> None:
        super().__init__(
            200, "Pending", f"transaction {signature} still pending after {waited_s:.0f}s"
        )
        self.signature = signature


def error_for_status(
    status: int, error: str, message: str, retry_after_s: float | None = None
) -> GatewayError:
    """The typed error for an HTTP error answer."""
    if status == 400:
        return GatewayBadRequest(status, error, message)
    if status in (401, 403):
        return GatewayAuthError(status, error, message)
    if status == 404:
        if message.startswith("Route ") and message.endswith("not found"):
            return GatewayRouteMissing(status, error, message)
        return GatewayNotFound(status, error, message)
    if status == 429:
        return GatewayRateLimited(status, error, message, retry_after_s)
    if status >= 500:
        return GatewayServerError(status, error, message)
    return GatewayError(status, error, message)
