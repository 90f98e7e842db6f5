"""Gateway's two CLMM route families and how each is addressed.

* **unified** ``/trading/clmm/{pool-info,quote-position,positions-owned,position-info}`` (GET)
  and ``/trading/clmm/{open,close,remove,collect-fees}`` (POST), addressed with ``connector``
  and ``chainNetwork`` (``"ethereum-mainnet"``);
* **legacy** ``/connectors/uniswap/clmm/{pool-info,...,open-position,close-position,
  remove-liquidity,collect-fees}``, addressed with ``network``.

Which family a Gateway serves is detected by :class:`env.gateway.GatewayClient`; this module
only maps a logical operation to the path and the parameters of a given family.
"""

from __future__ import annotations

from typing import Any, Literal

from clmmd.env.gateway_models import Json, Venue

RouteFamily = Literal["unified", "legacy"]

#: Logical operation -> (HTTP method, unified path, legacy path).
ROUTES: dict[str, tuple[str, str, str]] = {
    "pool_info": ("GET", "/trading/clmm/pool-info", "/connectors/{connector}/clmm/pool-info"),
    "quote_position": (
        "GET",
        "/trading/clmm/quote-position",
        "/connectors/{connector}/clmm/quote-position",
    ),
    "positions_owned": (
        "GET",
        "/trading/clmm/positions-owned",
        "/connectors/{connector}/clmm/positions-owned",
    ),
    "position_info": (
        "GET",
        "/trading/clmm/position-info",
        "/connectors/{connector}/clmm/position-info",
    ),
    "open": ("POST", "/trading/clmm/open", "/connectors/{connector}/clmm/open-position"),
    "close": ("POST", "/trading/clmm/close", "/connectors/{connector}/clmm/close-position"),
    "remove": ("POST", "/trading/clmm/remove", "/connectors/{connector}/clmm/remove-liquidity"),
    "collect_fees": (
        "POST",
        "/trading/clmm/collect-fees",
        "/connectors/{connector}/clmm/collect-fees",
    ),
}


def route_path(op: str, venue: Venue, family: RouteFamily) -> str:
    """The path of operation ``op`` (a :data:`ROUTES` key) in ``family``."""
    _method, unified, legacy = ROUTES[op]
    return unified if family == "unified" else legacy.format(connector=venue.connector)


def route_params(venue: Venue, family: RouteFamily, **fields: Any) -> Json:
    """Query or body for ``family``: how it names the venue, plus the fields that are set."""
    base: Json = (
        {"connector": venue.connector, "chainNetwork": venue.chain_network}
        if family == "unified"
        else {"network": venue.network}
    )
    base.update({k: v for k, v in fields.items() if v is not None})
    return base
