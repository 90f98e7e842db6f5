"""The writes of one live position and the reconciliation of ambiguous ones.

Ambiguous writes are never re-sent. An open that comes back without a transaction hash (Gateway
answers 500 while the transaction is still pending, or the answer is lost) is reconciled with
positions-owned: a new position in our range means it went through; none means it failed. A
close that fails is checked the same way before falling back to remove 100 % + collect fees. A
reverted transaction (receipt status 0, Gateway's -1) raises
:class:`~env.gateway_errors.TransactionReverted` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.env.base import ExecutionRequest, PoolSpec
from clmmd.env.gateway import (
    TX_CONFIRMED,
    TX_FAILED,
    GatewayClient,
    PositionInfo,
    PositionQuote,
    Venue,
    WriteResult,
)
from clmmd.env.gateway_errors import (
    GatewayError,
    GatewayServerError,
    GatewayUnreachable,
    TransactionNotConfirmed,
    TransactionReverted,
)

log = structlog.get_logger(__name__)


class LiveExecutionError(Exception):
    """A live step failed in a way the operator must look at (message says what to check)."""


@dataclass
class Legs:
    """What the writes reported, in base/quote human units."""

    transactions: list[str]
    gas_native: float = 0.0
    base_added: float = 0.0
    quote_added: float = 0.0
    base_removed: float = 0.0
    quote_removed: float = 0.0
    base_fees: float = 0.0
    quote_fees: float = 0.0


class LivePositionWriter:
    """Opens and closes one wallet's positions through Gateway, recording each leg.

    ``reconcile_checks`` positions-owned reads, ``reconcile_interval_s`` apart, decide an
    ambiguous write; a pending transaction is polled every ``poll_interval_s`` for at most
    ``confirm_timeout_s``.
    """

    def __init__(
        self,
        client: GatewayClient,
        venue: Venue,
        wallet_address: str,
        clock: Clock,
        *,
        slippage_pct: float | None,
        reconcile_checks: int,
        reconcile_interval_s: float,
        confirm_timeout_s: float,
        poll_interval_s: float,
    ) -> None:
        self._client = client
        self._venue = venue
        self._wallet = wallet_address
        self._clock = clock
        self._slippage_pct = slippage_pct
        self._reconcile_checks = reconcile_checks
        self._reconcile_interval_s = reconcile_interval_s
        self._confirm_timeout_s = confirm_timeout_s
        self._poll_interval_s = poll_interval_s

    async def open(
        self,
        pool: PoolSpec,
        request: ExecutionRequest,
        lower: float,
        upper: float,
        quote: PositionQuote,
        legs: Legs,
    ) -> tuple[str, bool]:
        """Open once; returns (position id, whether it had to be reconciled)."""
        before = {
            p.address
            for p in await self._client.positions_owned(self._venue, self._wallet, pool.address)
        }
        try:
            result = await self._client.open_position(
                self._venue,
                self._wallet,
                pool.address,
                lower,
                upper,
                quote.base_token_amount or None,
                quote.quote_token_amount or None,
                self._slippage_pct,
            )
        except (GatewayServerError, GatewayUnreachable) as exc:
            # No hash: the transaction may be pending. Look for it; never send it again.
            log.warning("live_open_ambiguous", error=str(exc))
            found = await self._find_new_position(request, pool, before, (lower, upper), str(exc))
            legs.base_added, legs.quote_added = found.base_token_amount, found.quote_token_amount
            return found.address, True
        result = await self._settle(result, legs)
        position_id = result.data.get("positionAddress")
        legs.base_added = result.amount("baseTokenAmountAdded")
        legs.quote_added = result.amount("quoteTokenAmountAdded")
        if not position_id:  # confirmed by polling: the answer had no data
            found = await self._find_new_position(
                request, pool, before, (lower, upper), "confirmed without a position id"
            )
            position_id = found.address
            if not (legs.base_added or legs.quote_added):
                legs.base_added = found.base_token_amount
                legs.quote_added = found.quote_token_amount
        return str(position_id), False

    async def _find_new_position(
        self,
        request: ExecutionRequest,
        pool: PoolSpec,
        before: set[str],
        prices: tuple[float, float],
        why: str,
    ) -> PositionInfo:
        for check in range(1, self._reconcile_checks + 1):
            for position in await self._owned_or_none(pool, check) or []:
                if position.address not in before and same_range(position, request, prices):
                    log.info("live_open_reconciled", position=position.address, check=check)
                    return position
            if check < self._reconcile_checks:
                await self._clock.sleep(self._reconcile_interval_s)
        raise LiveExecutionError(
            f"open failed ({why}); no new position in ticks [{request.tick_lower}, "
            f"{request.tick_upper}) appeared after {self._reconcile_checks} checks. The open was "
            "not re-sent; check the wallet's pending transactions before retrying"
        )

    async def _owned_or_none(self, pool: PoolSpec, check: int) -> list[PositionInfo] | None:
        """The wallet's positions in ``pool``; ``None`` (logged) when reconciliation's read
        fails, which proves nothing either way."""
        try:
            return await self._client.positions_owned(self._venue, self._wallet, pool.address)
        except GatewayError as exc:
            log.warning("live_reconcile_read_failed", check=check, error=str(exc))
            return None

    async def _settle(self, result: WriteResult, legs: Legs) -> WriteResult:
        """Wait out a pending write; raise on a reverted one. Records hash and gas."""
        legs.transactions.append(result.signature)
        if result.status == TX_FAILED:
            poll = await self._client.poll(self._venue, result.signature)
            raise TransactionReverted(result.signature, poll.error or "Gateway reported failure")
        if result.status != TX_CONFIRMED:
            poll = await self._client.wait_confirmed(
                self._venue,
                result.signature,
                interval_s=self._poll_interval_s,
                timeout_s=self._confirm_timeout_s,
            )
            legs.gas_native += poll.fee_native or result.fee_native
            return result
        legs.gas_native += result.fee_native
        return result

    async def close(self, pool: PoolSpec, position: str, legs: Legs) -> str:
        """Close; if that fails and the position still exists, remove 100 % and collect fees."""
        snapshot: PositionInfo | None = None
        try:
            snapshot = await self._client.position_info(
                self._venue, self._wallet, position, pool.address
            )
        except GatewayError as exc:
            log.warning("live_position_snapshot_failed", error=str(exc))
        try:
            result = await self._settle(
                await self._client.close_position(
                    self._venue, self._wallet, position, pool.address
                ),
                legs,
            )
            self._removed(legs, result, snapshot, fees_in_answer=True)
            return "close"
        except TransactionNotConfirmed as exc:
            # A pending close must not race a second write from the same wallet.
            raise LiveExecutionError(
                f"close of position {position} is still pending ({exc}); not falling back: "
                "check the transaction, then close by hand if it is dropped"
            ) from exc
        except GatewayError as exc:
            close_error = exc
        log.warning("live_close_failed", position=position, error=str(close_error))
        # A close answered 500 without a hash may still be mining: give it the same checks
        # as an open before sending anything else. A definite failure needs one look only.
        ambiguous = isinstance(close_error, (GatewayServerError, GatewayUnreachable))
        checks = self._reconcile_checks if ambiguous else 1
        for check in range(1, checks + 1):
            owned = await self._owned_or_none(pool, check)
            if owned is not None and not any(p.address == position for p in owned):
                log.info("live_close_reconciled", position=position, check=check)
                self._removed(legs, None, snapshot, fees_in_answer=False)
                return "close_reconciled"
            if check < checks:
                await self._clock.sleep(self._reconcile_interval_s)
        try:
            removed = await self._settle(
                await self._client.remove_liquidity(
                    self._venue, self._wallet, position, pool.address, 100.0
                ),
                legs,
            )
            collected = await self._settle(
                await self._client.collect_fees(self._venue, self._wallet, position, pool.address),
                legs,
            )
        except GatewayError as exc:
            raise LiveExecutionError(
                f"close failed ({close_error}) and remove+collect failed ({exc}); "
                f"position {position} may still hold liquidity: close it by hand"
            ) from exc
        self._removed(legs, removed, snapshot, fees_in_answer=False)
        legs.base_fees = collected.amount("baseFeeAmountCollected") or legs.base_fees
        legs.quote_fees = collected.amount("quoteFeeAmountCollected") or legs.quote_fees
        return "remove+collect"

    @staticmethod
    def _removed(
        legs: Legs, result: WriteResult | None, snapshot: PositionInfo | None, fees_in_answer: bool
    ) -> None:
        """Amounts out of the position: from the answer, else the pre-close snapshot."""
        if result is not None and (
            "baseTokenAmountRemoved" in result.data or "quoteTokenAmountRemoved" in result.data
        ):
            legs.base_removed = result.amount("baseTokenAmountRemoved")
            legs.quote_removed = result.amount("quoteTokenAmountRemoved")
        elif snapshot is not None:
            legs.base_removed = snapshot.base_token_amount
            legs.quote_removed = snapshot.quote_token_amount
        if fees_in_answer and result is not None and "baseFeeAmountCollected" in result.data:
            legs.base_fees = result.amount("baseFeeAmountCollected")
            legs.quote_fees = result.amount("quoteFeeAmountCollected")
        elif snapshot is not None:
            legs.base_fees, legs.quote_fees = snapshot.base_fee_amount, snapshot.quote_fee_amount


def same_range(
    position: PositionInfo, request: ExecutionRequest, prices: tuple[float, float]
) -> bool:
    """Our range: same ticks when Gateway reports them, else the same prices within 0.5 %."""
    if position.lower_tick is not None and position.upper_tick is not None:
        return (position.lower_tick, position.upper_tick) == (
            request.tick_lower,
            request.tick_upper,
        )
    lower, upper = prices
    return (
        position.lower_price > 0
        and abs(position.lower_price / lower - 1) <= 0.005
        and abs(position.upper_price / upper - 1) <= 0.005
    )
