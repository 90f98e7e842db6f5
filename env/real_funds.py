"""Before an open: does the wallet hold the tokens, and may the position manager take them?

Gateway v2.13 does not approve by itself: open-position answers 400 "Insufficient … allowance"
unless the wallet approved the position manager (spender ``uniswap/clmm``) for at least the
amounts. :func:`check_funds` reads balances and allowances (reads only) and says what is short;
:func:`approve_shortfall` approves under the configured policy:

* ``exact`` (default): approve exactly the amount this open sends, rounded up to the token's
  smallest unit; nothing is left approved beyond what the position takes;
* ``unlimited``: Gateway's default approval (max uint256), once per token;
* ``never``: approve nothing; a missing allowance skips the episode (gate ``allowance``).

Each approval is a transaction recorded in the episode's ledger with its gas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Literal

from clmmd.env.base import PoolSpec
from clmmd.env.gateway import GatewayClient, Venue
from clmmd.env.real_ledger import Ledger
from clmmd.env.real_positions import LivePositionWriter

ApprovalPolicy = Literal["exact", "unlimited", "never"]
APPROVAL_POLICIES: tuple[str, ...] = ("exact", "unlimited", "never")


@dataclass(frozen=True)
class Need:
    """One token the open sends: symbol, decimals and the human amount."""

    symbol: str
    decimals: int
    amount: float

    @property
    def raw(self) -> int:
        """What Gateway's open-position will require in the token's smallest unit.

        Gateway computes ``Math.floor(amount * 10 ** decimals)`` in float64 and reads the
        result's shortest decimal form (``toString``), which can exceed the exact product; the
        larger of that and the exact amount rounded up is what must be approved.
        """
        as_js = int(Decimal(repr(float(math.floor(self.amount * 10.0**self.decimals)))))
        exact = int(Decimal(repr(self.amount)).scaleb(self.decimals).to_integral(ROUND_CEILING))
        return max(as_js, exact)

    @property
    def exact(self) -> str:
        """:attr:`raw` as a decimal string in human units (what ``approve`` is sent)."""
        return str(Decimal(self.raw).scaleb(-self.decimals))


@dataclass(frozen=True)
class FundsCheck:
    """What the reads found: balance shortfalls (a gate), and allowances to approve."""

    short_balances: tuple[str, ...]
    to_approve: tuple[Need, ...]
    balances: dict[str, float]
    allowances: dict[str, str]

    @property
    def balance_ok(self) -> bool:
        return not self.short_balances


def needs(pool: PoolSpec, amount0: float, amount1: float) -> list[Need]:
    """The tokens an open of (amount0, amount1) sends (zero amounts need nothing)."""
    out = []
    for symbol, decimals, amount in (
        (pool.token0, pool.decimals0, amount0),
        (pool.token1, pool.decimals1, amount1),
    ):
        if amount > 0:
            out.append(Need(symbol, decimals, amount))
    return out


async def check_funds(
    client: GatewayClient, venue: Venue, wallet: str, wanted: list[Need], native: str = "ETH"
) -> FundsCheck:
    """Balances (tokens + the native token for gas) and allowances for ``wanted``."""
    symbols = [n.symbol for n in wanted]
    balances = (await client.balances(venue, wallet, [*symbols, native])).balances
    allowed = await client.allowances(venue, wallet, symbols) if symbols else None
    short = [
        f"{n.symbol}: holds {balances.get(n.symbol, 0.0):.8g}, the open needs {n.amount:.8g}"
        for n in wanted
        if balances.get(n.symbol, 0.0) < n.amount
    ]
    if not balances.get(native, 0.0) > 0:
        short.append(f"{native}: holds none, gas cannot be paid")
    to_approve = tuple(
        n for n in wanted if allowed is None or allowed.raw(n.symbol, n.decimals) < n.raw
    )
    approvals = {k: format(v, "f") for k, v in allowed.approvals.items()} if allowed else {}
    return FundsCheck(tuple(short), to_approve, dict(balances), approvals)


async def approve_shortfall(
    client: GatewayClient,
    venue: Venue,
    wallet: str,
    check: FundsCheck,
    policy: ApprovalPolicy,
    ledger: Ledger,
    writer: LivePositionWriter,
) -> None:
    """Approve what ``check`` found short, under ``policy`` (``never`` is the caller's gate)."""
    for need in check.to_approve:
        amount = need.exact if policy == "exact" else None
        result = await client.approve(venue, wallet, need.symbol, amount)
        await writer.settle(
            result,
            ledger,
            "approve",
            token_symbol=need.symbol,
            amount=amount if amount is not None else "unlimited",
            policy=policy,
            allowance_before=check.allowances.get(need.symbol, "0"),
        )
