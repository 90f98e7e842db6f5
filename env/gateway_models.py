"""Gateway's answers as pydantic models, :class:`Venue` and amount parsing.

Every answer Gateway sends is parsed here (``Model.parse(body)``); a malformed one raises
:class:`~env.gateway_errors.GatewayResponseError` naming the route and the field, never
``KeyError``/``ValidationError``. Amounts arrive as JSON numbers or decimal strings (Gateway
v2.13 sends ``fee`` as a number in CLMM answers and as a string in ``approve``): both parse.

Orientation (Gateway v2.13's source, see ``docs/gateway.md``): pool-info, quote-position and
open-position call the pool's token0 the base; position-info, positions-owned and the position
writes call "WETH, else the lower address" the base. Answers that carry token addresses are
oriented by those addresses (:meth:`PositionInfo.token_amounts`); write answers carry none and
are oriented by the position they act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from clmmd.env.gateway_errors import GatewayResponseError

Json = dict[str, Any]

#: Gateway's TransactionStatus enum (src/schemas/chain-schema.ts).
TX_CONFIRMED, TX_PENDING, TX_FAILED = 1, 0, -1


def parse_amount(value: Any, field: str) -> float:
    """A number Gateway sent as a JSON number or a decimal string (``"1.5"``), as float."""
    if isinstance(value, bool) or value is None:
        raise GatewayResponseError(f"field {field!r}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise GatewayResponseError(f"field {field!r}: not finite: {value!r}")
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


def _number(value: Any) -> float:
    try:
        return parse_amount(value, "amount")
    except GatewayResponseError as exc:
        raise ValueError(exc.message) from None


#: A float that also accepts Gateway's decimal strings.
Amount = Annotated[float, BeforeValidator(_number)]
#: An integer (tick, status) Gateway may send as a number or a numeric string.
Whole = Annotated[int, BeforeValidator(lambda v: int(_number(v)))]


class GatewayModel(BaseModel):
    """Base of the answer models: unknown fields ignored, Python or Gateway names accepted."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    @classmethod
    def parse(cls, body: Any, what: str | None = None) -> Self:
        """Validate one answer; ``GatewayResponseError`` names the route and the bad field."""
        name = what or cls.__name__
        if not isinstance(body, dict):
            raise GatewayResponseError(f"{name}: expected a JSON object, got {type(body).__name__}")
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "answer"
            raise GatewayResponseError(f"{name}: field {where!r}: {first['msg']}") from None


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


def lower_address_first(a: str, b: str) -> bool:
    """Whether ``a`` sorts before ``b`` as Uniswap orders a pool's tokens (numerically)."""
    return int(a, 16) < int(b, 16)


class PoolInfo(GatewayModel):
    """pool-info. ``price`` is quote per base in human units, base as the answer names it."""

    address: str
    base_token_address: str = Field(alias="baseTokenAddress")
    quote_token_address: str = Field(alias="quoteTokenAddress")
    fee_pct: Amount = Field(alias="feePct")
    price: Amount
    active_tick: Whole | None = Field(None, alias="activeBinId")
    bin_step: Whole | None = Field(None, alias="binStep")

    @property
    def base_is_token0(self) -> bool:
        """Uniswap orders a pool's tokens by address: token0 has the lower one."""
        return lower_address_first(self.base_token_address, self.quote_token_address)

    @property
    def token0_address(self) -> str:
        return self.base_token_address if self.base_is_token0 else self.quote_token_address

    @property
    def token1_per_token0(self) -> float:
        """The pool price as token1 per token0 in human units, whatever the base."""
        return self.price if self.base_is_token0 else 1.0 / self.price


class PositionQuote(GatewayModel):
    """quote-position: the amounts an open of that range would add (``*_max`` with slippage),
    in pool-info's orientation (base = token0 in Gateway v2.13)."""

    base_limited: bool = Field(False, alias="baseLimited")
    base_token_amount: Amount = Field(alias="baseTokenAmount")
    quote_token_amount: Amount = Field(alias="quoteTokenAmount")
    base_token_amount_max: Amount | None = Field(None, alias="baseTokenAmountMax")
    quote_token_amount_max: Amount | None = Field(None, alias="quoteTokenAmountMax")

    def model_post_init(self, context: Any) -> None:
        # Older answers had no *_max: the plain amounts are the worst case then.
        if self.base_token_amount_max is None:
            object.__setattr__(self, "base_token_amount_max", self.base_token_amount)
        if self.quote_token_amount_max is None:
            object.__setattr__(self, "quote_token_amount_max", self.quote_token_amount)


class PositionInfo(GatewayModel):
    """One position (positions-owned entry or position-info). Ticks are Uniswap's bin ids.

    Base/quote here follow the position routes' rule (WETH, else the lower address), which is
    not pool-info's: read amounts through :meth:`token_amounts`, which orients them by the
    addresses the answer carries.
    """

    address: str
    pool_address: str = Field(alias="poolAddress")
    base_token_address: str | None = Field(None, alias="baseTokenAddress")
    quote_token_address: str | None = Field(None, alias="quoteTokenAddress")
    base_token_amount: Amount = Field(0.0, alias="baseTokenAmount")
    quote_token_amount: Amount = Field(0.0, alias="quoteTokenAmount")
    base_fee_amount: Amount = Field(0.0, alias="baseFeeAmount")
    quote_fee_amount: Amount = Field(0.0, alias="quoteFeeAmount")
    lower_tick: Whole | None = Field(None, alias="lowerBinId")
    upper_tick: Whole | None = Field(None, alias="upperBinId")
    lower_price: Amount = Field(0.0, alias="lowerPrice")
    upper_price: Amount = Field(0.0, alias="upperPrice")

    @property
    def base_is_token0(self) -> bool:
        """Whether this answer's base is the pool's token0, from the addresses it carries."""
        if not self.base_token_address or not self.quote_token_address:
            raise GatewayResponseError(
                f"position {self.address}: no token addresses, its amounts cannot be oriented"
            )
        return lower_address_first(self.base_token_address, self.quote_token_address)

    def token_amounts(self) -> tuple[float, float]:
        """(token0, token1) held, in human units."""
        b, q = self.base_token_amount, self.quote_token_amount
        return (b, q) if self.base_is_token0 else (q, b)

    def token_fees(self) -> tuple[float, float]:
        """(token0, token1) owed (``tokensOwed``: only current after liquidity was touched)."""
        b, q = self.base_fee_amount, self.quote_fee_amount
        return (b, q) if self.base_is_token0 else (q, b)

    @property
    def is_empty(self) -> bool:
        """No liquidity and nothing owed: what remains is an empty NFT."""
        return not any(self.token_amounts()) and not any(self.token_fees())


class WriteResult(GatewayModel):
    """A write's answer: ``signature``, ``status`` and ``data``.

    Gateway v2.13 puts the *receipt's* status here on a mined transaction (1 succeeded,
    0 reverted) with ``data`` filled, and answers a still-pending one with a 500 (no hash).
    Older versions used ``TransactionStatus`` (1 / 0 pending / -1 failed) with ``data`` only
    when confirmed, or answered flat (no ``status``/``data``): read as confirmed.
    """

    signature: str = Field(min_length=1, validation_alias="signature")
    status: Whole = TX_CONFIRMED
    data: Json = Field(default_factory=dict)

    @classmethod
    def parse(cls, body: Any, what: str | None = None) -> WriteResult:
        if isinstance(body, dict) and "signature" not in body and body.get("txHash"):
            body = {**body, "signature": body["txHash"]}
        if isinstance(body, dict) and "status" not in body:
            body = {"signature": body.get("signature"), "status": TX_CONFIRMED, "data": body}
        if isinstance(body, dict) and body.get("data") is None:
            body = {**body, "data": {}}
        return super().parse(body, what or "write answer")

    @property
    def reverted(self) -> bool:
        """Mined and reverted: v2.13's receipt status 0 with the receipt's data, or -1."""
        return self.status == TX_FAILED or (self.status == TX_PENDING and "fee" in self.data)

    @property
    def pending(self) -> bool:
        return self.status == TX_PENDING and not self.reverted

    @property
    def fee_native(self) -> float:
        """Gas paid in the chain's native token (0 when Gateway did not say)."""
        return self.amount("fee")

    def amount(self, field: str) -> float:
        """A numeric field of ``data`` (0 when Gateway did not send it)."""
        value = self.data.get(field)
        return 0.0 if value is None else parse_amount(value, field)


class PollResult(GatewayModel):
    """``/chains/{chain}/poll``. ``tx_status`` 1 means *mined* (v2.13 sets it for any
    receipt, reverted or not), 0/2/3 pending, -1 unknown or failed."""

    signature: str
    tx_status: Whole = Field(alias="txStatus")
    tx_block: Whole | None = Field(None, alias="txBlock")
    fee_native: Amount | None = Field(None, alias="fee")
    error: str | None = None


class Balances(GatewayModel):
    """``POST /chains/{chain}/balances``: symbol -> human amount."""

    balances: dict[str, Amount]


class Allowances(GatewayModel):
    """``POST /chains/{chain}/allowances``: the spender's address and symbol -> allowance
    (decimal strings carrying every digit of the token: compared exactly, never as floats)."""

    spender: str
    approvals: dict[str, Decimal]

    def raw(self, symbol: str, decimals: int) -> int:
        """The allowance of ``symbol`` in the token's smallest unit (0 when not listed)."""
        return int(self.approvals.get(symbol, Decimal(0)).scaleb(decimals))


class ChainStatus(GatewayModel):
    """``GET /chains/{chain}/status``: where Gateway's node is (may embed a provider key)."""

    chain: str
    network: str
    rpc_url: str | None = Field(None, alias="rpcUrl")
    current_block: Whole | None = Field(None, alias="currentBlockNumber")


class Health(GatewayModel):
    """``GET /``: ``{"status": "ok"}``."""

    status: Literal["ok"]


class TokenInfo(GatewayModel):
    """``GET /tokens/{symbol}``'s ``token``."""

    symbol: str
    address: str
    decimals: Whole | None = None


def expect_object(value: Any, what: str) -> Json:
    """``value`` if it is a JSON object, else a :class:`GatewayResponseError` naming ``what``."""
    if not isinstance(value, dict):
        raise GatewayResponseError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value
