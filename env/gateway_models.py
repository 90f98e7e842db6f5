"""Parsed Gateway answers: the CLMM response dataclasses, :class:`Venue` and amount parsing.

Gateway sends amounts as JSON numbers or decimal strings and has renamed fields between
versions; every ``parse`` here accepts both spellings and raises
:class:`~env.gateway_errors.GatewayResponseError` (never ``KeyError``) on a malformed answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from clmmd.env.gateway_errors import GatewayResponseError

Json = dict[str, Any]

#: Gateway's TransactionStatus enum (src/schemas/chain-schema.ts).
TX_CONFIRMED, TX_PENDING, TX_FAILED = 1, 0, -1


def parse_amount(value: Any, field: str) -> float:
    """A number Gateway sent as a JSON number or a decimal string (``"1.5"``), as float."""
    if isinstance(value, bool) or value is None:
        raise GatewayResponseError(f"field {field!r}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (str, Decimal)):
        try:
            parsed = Decimal(str(value).strip())
        except InvalidOperation:
            raise GatewayResponseError(f"field {field!r}: not a number: {value!r}") from None
        if not parsed.is_finite():
            raise GatewayResponseError(f"field {field!r}: not finite: {value!r}")
        return float(parsed)
    raise GatewayResponseError(f"field {field!r}: expected a number, got {type(value).__name__}")


def _amount(body: Mapping[str, Any], field: str, default: float | None = None) -> float:
    if field not in body or body[field] is None:
        if default is not None:
            return default
        raise GatewayResponseError(f"missing field {field!r}")
    return parse_amount(body[field], field)


@dataclass(frozen=True)
class Venue:
    """Where to act: Gateway's chain and network names plus the CLMM connector."""

    chain: str = "ethereum"
    network: str = "mainnet"
    connector: str = "uniswap"

    @property
    def chain_network(self) -> str:
        """The unified routes' ``chainNetwork`` (``"ethereum-mainnet"``)."""
        return f"{self.chain}-{self.network}"


@dataclass(frozen=True)
class PoolInfo:
    """pool-info. ``price`` is quote tokens per base token in human units."""

    address: str
    base_token_address: str
    quote_token_address: str
    fee_pct: float
    price: float
    active_tick: int | None

    @classmethod
    def parse(cls, body: Json) -> PoolInfo:
        """Read Gateway's JSON answer."""
        try:
            tick = body.get("activeBinId", body.get("tick"))
            return cls(
                address=str(body["address"]),
                base_token_address=str(body["baseTokenAddress"]),
                quote_token_address=str(body["quoteTokenAddress"]),
                fee_pct=_amount(body, "feePct"),
                price=_amount(body, "price"),
                active_tick=int(parse_amount(tick, "activeBinId")) if tick is not None else None,
            )
        except KeyError as exc:
            raise GatewayResponseError(f"pool-info: missing field {exc}") from None

    @property
    def base_is_token0(self) -> bool:
        """Uniswap orders a pool's tokens by address: token0 has the lower one."""
        return int(self.base_token_address, 16) < int(self.quote_token_address, 16)


@dataclass(frozen=True)
class PositionQuote:
    """quote-position: the amounts an open of that range would add (``*_max`` with slippage)."""

    base_limited: bool
    base_token_amount: float
    quote_token_amount: float
    base_token_amount_max: float
    quote_token_amount_max: float

    @classmethod
    def parse(cls, body: Json) -> PositionQuote:
        """Read Gateway's JSON answer."""
        base = _amount(body, "baseTokenAmount")
        quote = _amount(body, "quoteTokenAmount")
        return cls(
            base_limited=bool(body.get("baseLimited", False)),
            base_token_amount=base,
            quote_token_amount=quote,
            base_token_amount_max=_amount(body, "baseTokenAmountMax", base),
            quote_token_amount_max=_amount(body, "quoteTokenAmountMax", quote),
        )


@dataclass(frozen=True)
class PositionInfo:
    """One position (positions-owned entry or position-info). Ticks are Uniswap's bin ids."""

    address: str
    pool_address: str
    base_token_amount: float
    quote_token_amount: float
    base_fee_amount: float
    quote_fee_amount: float
    lower_tick: int | None
    upper_tick: int | None
    lower_price: float
    upper_price: float

    @classmethod
    def parse(cls, body: Json) -> PositionInfo:
        """Read Gateway's JSON answer."""
        try:
            low, high = body.get("lowerBinId"), body.get("upperBinId")
            return cls(
                address=str(body["address"]),
                pool_address=str(body["poolAddress"]),
                base_token_amount=_amount(body, "baseTokenAmount", 0.0),
                quote_token_amount=_amount(body, "quoteTokenAmount", 0.0),
                base_fee_amount=_amount(body, "baseFeeAmount", 0.0),
                quote_fee_amount=_amount(body, "quoteFeeAmount", 0.0),
                lower_tick=int(parse_amount(low, "lowerBinId")) if low is not None else None,
                upper_tick=int(parse_amount(high, "upperBinId")) if high is not None else None,
                lower_price=_amount(body, "lowerPrice", 0.0),
                upper_price=_amount(body, "upperPrice", 0.0),
            )
        except KeyError as exc:
            raise GatewayResponseError(f"position: missing field {exc}") from None


@dataclass(frozen=True)
class WriteResult:
    """A write's answer: ``status`` 1 confirmed, 0 pending, -1 failed; ``data`` when confirmed.

    Older Gateways answered confirmed writes flat (no ``status``/``data``); those are read as
    confirmed with the body itself as ``data``.
    """

    signature: str
    status: int
    data: Json

    @classmethod
    def parse(cls, body: Json) -> WriteResult:
        """Read Gateway's JSON answer."""
        signature = body.get("signature") or body.get("txHash")
        if not isinstance(signature, str) or not signature:
            raise GatewayResponseError("write answer without a transaction signature")
        if "status" not in body:
            return cls(signature, TX_CONFIRMED, dict(body))
        status = int(parse_amount(body["status"], "status"))
        data = body.get("data")
        return cls(signature, status, dict(data) if isinstance(data, dict) else {})

    @property
    def fee_native(self) -> float:
        """Gas paid in the chain's native token (0 when Gateway did not say)."""
        return _amount(self.data, "fee", 0.0)

    def amount(self, field: str) -> float:
        """A numeric field of ``data`` (0 when Gateway did not send it)."""
        return _amount(self.data, field, 0.0)


@dataclass(frozen=True)
class PollResult:
    """``/chains/{chain}/poll``: the transaction's status (``TX_*``), gas paid and error."""

    signature: str
    tx_status: int
    fee_native: float | None
    error: str | None


def expect_object(value: Any, what: str) -> Json:
    """``value`` if it is a JSON object, else a :class:`GatewayResponseError` naming ``what``."""
    if not isinstance(value, dict):
        raise GatewayResponseError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value
