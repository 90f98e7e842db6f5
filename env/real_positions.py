"""The writes of one live position, their accounting, and the reconciliation of ambiguous ones.

Ambiguous writes are never re-sent. An open that comes back without a transaction hash (Gateway
v2.13 answers 500 "Failed to open position" when the receipt did not come within its 10 s, or
the answer is lost) is reconciled with positions-owned: a new position in our ticks means it went
through (its amounts are read from that position, oriented by its token addresses); none means
it failed. A close that fails is checked the same way before falling back to remove 100 % (which
collects too) and, when anything is still owed, collect-fees; the fallback ends with a statement
of what the position still holds, read from Gateway's position-info.

Every hash Gateway returns is checked against its receipt (:mod:`env.real_receipts`): mined is
not succeeded, and a reverted transaction raises :class:`~env.gateway_errors.TransactionReverted`
with its gas recorded. Amounts and gas come from the receipt when the node can be read, else from
Gateway's answer (recorded as such in the ledger).
"""

from __future__ import annotations

import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.env.base import ExecutionRequest, PoolSpec
from clmmd.env.gateway import (
    TX_FAILED,
    GatewayClient,
    PoolInfo,
    PositionInfo,
    PositionQuote,
    Venue,
    WriteResult,
)
from clmmd.env.gateway_errors import (
    GatewayBadRequest,
    GatewayError,
    GatewayServerError,
    GatewayUnreachable,
    TransactionNotConfirmed,
    TransactionReverted,
)
from clmmd.env.real_ledger import Ledger, TxKind, TxRecord
from clmmd.env.real_receipts import Receipt, ReceiptSource

log = structlog.get_logger(__name__)


class LiveExecutionError(Exception):
    """A live step failed in a way the operator must look at (message says what to check)."""


def position_route_base_is_token0(pool: PoolSpec) -> bool:
    """Gateway v2.13's position routes (close, remove, collect, position-info): the base is
    WETH, else the lower address (token0). Used only when no answer carries addresses."""
    return pool.token0.upper() == "WETH" or pool.token1.upper() != "WETH"


def to_token01(base: float, quote: float, base_is_token0: bool) -> tuple[float, float]:
    return (base, quote) if base_is_token0 else (quote, base)


def human(pool: PoolSpec, raw: tuple[int, int]) -> tuple[float, float]:
    return raw[0] / 10.0**pool.decimals0, raw[1] / 10.0**pool.decimals1


class LivePositionWriter:
    """Opens and closes one wallet's positions through Gateway, recording each transaction.

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
        receipts: ReceiptSource,
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
        self._receipts = receipts
        self._slippage_pct = slippage_pct
        self._reconcile_checks = reconcile_checks
        self._reconcile_interval_s = reconcile_interval_s
        self._confirm_timeout_s = confirm_timeout_s
        self._poll_interval_s = poll_interval_s

    # --- settling one transaction ---

    async def settle(
        self, result: WriteResult, ledger: Ledger, kind: TxKind, **detail: object
    ) -> Receipt | None:
        """Wait out a pending write, record it with its gas, raise if it reverted.

        Returns the receipt when the node could be read (``None`` otherwise).
        """
        poll = None
        if result.pending:
            try:
                poll = await self._client.wait_confirmed(
                    self._venue,
                    result.signature,
                    interval_s=self._poll_interval_s,
                    timeout_s=self._confirm_timeout_s,
                )
            except TransactionNotConfirmed:
                ledger.record(TxRecord(result.signature, kind, 0.0, "gateway", {"pending": True}))
                raise
            except TransactionReverted as exc:
                ledger.record(TxRecord(result.signature, kind, 0.0, "gateway", dict(detail)))
                raise exc
        receipt = await self._receipts.receipt(result.signature)
        if receipt is not None:
            ledger.record(TxRecord(result.signature, kind, receipt.gas_native, "receipt", detail))
            if not receipt.succeeded:
                raise TransactionReverted(result.signature, "receipt status 0 (reverted)")
            return receipt
        fee = result.fee_native or (poll.fee_native if poll and poll.fee_native else 0.0)
        ledger.record(TxRecord(result.signature, kind, fee, "gateway", dict(detail)))
        if result.reverted:
            reason = "Gateway reported the transaction failed"
            if result.status == TX_FAILED:
                reason = (await self._client.poll(self._venue, result.signature)).error or reason
            raise TransactionReverted(result.signature, reason)
        return None

    # --- open ---

    async def open(
        self,
        pool: PoolSpec,
        request: ExecutionRequest,
        info: PoolInfo,
        prices: tuple[float, float],
        quote: PositionQuote,
        ledger: Ledger,
    ) -> tuple[str, bool]:
        """Open once; returns (position id, whether it had to be reconciled).

        ``prices`` are sent as open-position reads them (token1 per token0, human units), the
        amounts in pool-info's orientation (``info``), as Gateway v2.13's open route expects.
        """
        before = {
            p.address
            for p in await self._client.positions_owned(self._venue, self._wallet, pool.address)
        }
        try:
            result = await self._client.open_position(
                self._venue,
                self._wallet,
                pool.address,
                prices[0],
                prices[1],
                quote.base_token_amount or None,
                quote.quote_token_amount or None,
                self._slippage_pct,
            )
        except (GatewayServerError, GatewayUnreachable) as exc:
            # No hash: the transaction may be pending. Look for it; never send it again.
            log.warning("live_open_ambiguous", error=str(exc))
            found = await self._find_new_position(request, pool, before, str(exc))
            await self._account_reconciled_open(pool, found, ledger)
            return found.address, True
        receipt = await self.settle(result, ledger, "open")
        position_id = str(result.data.get("positionAddress") or "")
        if receipt is not None:
            flows = receipt.position_flows(position_id or None)
            if not position_id and flows.token_ids:
                position_id = str(flows.token_ids[0])
            ledger.add("added", human(pool, flows.increased), "receipt")
        else:
            base = result.amount("baseTokenAmountAdded")
            quote_amt = result.amount("quoteTokenAmountAdded")
            if base or quote_amt:
                ledger.add("added", to_token01(base, quote_amt, info.base_is_token0), "gateway")
        if not position_id:  # confirmed by polling: the answer had no data
            found = await self._find_new_position(
                request, pool, before, "confirmed without a position id"
            )
            position_id = found.address
            if not any(ledger.added):
                ledger.add("added", found.token_amounts(), "gateway")
        return position_id, False

    async def _account_reconciled_open(
        self, pool: PoolSpec, found: PositionInfo, ledger: Ledger
    ) -> None:
        """An open that came back without a hash: find its mint on chain for the exact amounts
        and gas; else the position's amounts as Gateway reads them (oriented by address)."""
        tx_hash = await self._receipts.minted_in(found.address)
        receipt = await self._receipts.receipt(tx_hash) if tx_hash else None
        if tx_hash and receipt is not None and receipt.succeeded:
            detail = {"reconciled": True}
            ledger.record(TxRecord(tx_hash, "open", receipt.gas_native, "receipt", detail))
            ledger.add(
                "added", human(pool, receipt.position_flows(found.address).increased), "receipt"
            )
            return
        ledger.add("added", found.token_amounts(), "gateway")

    async def _find_new_position(
        self, request: ExecutionRequest, pool: PoolSpec, before: set[str], why: str
    ) -> PositionInfo:
        for check in range(1, self._reconcile_checks + 1):
            for position in await self._owned_or_none(pool, check) or []:
                if position.address not in before and same_range(position, request):
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
        """The wallet's positions in ``pool`` that hold liquidity (Gateway lists no others);
        ``None`` (logged) when the read fails, which proves nothing either way."""
        try:
            return await self._client.positions_owned(self._venue, self._wallet, pool.address)
        except GatewayError as exc:
            log.warning("live_reconcile_read_failed", check=check, error=str(exc))
            return None

    async def owned(self, pool: PoolSpec) -> list[PositionInfo]:
        """The wallet's positions with liquidity in ``pool`` (for start-up reconciliation)."""
        return await self._client.positions_owned(self._venue, self._wallet, pool.address)

    # --- close ---

    async def close(self, pool: PoolSpec, position: str, ledger: Ledger) -> str:
        """Close; if that fails and the position still exists, remove 100 % and collect what
        is owed. Returns how it was closed; raises with what is still held when it could not."""
        snapshot = await self.state(pool, position)
        try:
            result = await self._client.close_position(
                self._venue, self._wallet, position, pool.address
            )
            receipt = await self.settle(result, ledger, "close", position=position)
            self._account_exit(pool, position, result, receipt, snapshot, ledger, fees=True)
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
                state = await self.state(pool, position)
                if state is None or state.is_empty:
                    log.info("live_close_reconciled", position=position, check=check)
                    if snapshot is not None:
                        self._account_snapshot(snapshot, ledger)
                    return "close_reconciled"
                break  # liquidity gone but tokens still owed: collect below
            if check < checks:
                await self._clock.sleep(self._reconcile_interval_s)
        return await self._remove_and_collect(pool, position, snapshot, ledger, close_error)

    async def _remove_and_collect(
        self,
        pool: PoolSpec,
        position: str,
        snapshot: PositionInfo | None,
        ledger: Ledger,
        close_error: GatewayError,
    ) -> str:
        state = await self.state(pool, position)
        try:
            if state is None or any(state.token_amounts()):
                result = await self._client.remove_liquidity(
                    self._venue, self._wallet, position, pool.address, 100.0
                )
                receipt = await self.settle(result, ledger, "remove", position=position)
                # remove-liquidity collects everything owed in the same transaction.
                self._account_exit(pool, position, result, receipt, snapshot, ledger, fees=True)
                state = await self.state(pool, position)
            if state is not None and any(state.token_fees()):
                await self._collect(pool, position, state, ledger)
                state = await self.state(pool, position)
        except GatewayError as exc:
            raise LiveExecutionError(
                f"close failed ({close_error}) and remove+collect failed ({exc}); "
                + self._holding_statement(position, await self.state(pool, position))
            ) from exc
        if state is None or not state.is_empty:
            raise LiveExecutionError(
                f"close failed ({close_error}); after remove+collect "
                + self._holding_statement(position, state)
            )
        log.info(
            "live_position_emptied",
            position=position,
            note="no liquidity and nothing owed; the empty position NFT stays in the wallet",
        )
        return "remove+collect"

    async def _collect(
        self, pool: PoolSpec, position: str, state: PositionInfo, ledger: Ledger
    ) -> None:
        try:
            result = await self._client.collect_fees(
                self._venue, self._wallet, position, pool.address
            )
        except GatewayBadRequest as exc:
            # "No fees to collect": Gateway reads tokensOwed; the state read after decides.
            log.info("live_collect_nothing", position=position, answer=str(exc))
            return
        receipt = await self.settle(result, ledger, "collect", position=position)
        if receipt is not None:
            ledger.add("fees", human(pool, receipt.position_flows(position).collected), "receipt")
        else:
            base_is_token0 = state.base_is_token0
            fees = to_token01(
                result.amount("baseFeeAmountCollected"),
                result.amount("quoteFeeAmountCollected"),
                base_is_token0,
            )
            ledger.add("fees", fees, "gateway")

    async def state(self, pool: PoolSpec, position: str) -> PositionInfo | None:
        """position-info, or ``None`` when Gateway cannot read it (a burned position answers
        500 "Failed to get position info")."""
        try:
            return await self._client.position_info(
                self._venue, self._wallet, position, pool.address
            )
        except GatewayError as exc:
            log.info("live_position_unreadable", position=position, error=str(exc))
            return None

    @staticmethod
    def _holding_statement(position: str, state: PositionInfo | None) -> str:
        if state is None:
            return (
                f"position {position} could not be read from Gateway; check it on chain "
                "(positions-owned lists only positions with liquidity)"
            )
        amount0, amount1 = state.token_amounts()
        owed0, owed1 = state.token_fees()
        return (
            f"position {position} still holds {amount0:.8g} token0 + {amount1:.8g} token1 of "
            f"liquidity and owes {owed0:.8g} token0 + {owed1:.8g} token1: close it by hand"
        )

    def _account_exit(
        self,
        pool: PoolSpec,
        position: str,
        result: WriteResult,
        receipt: Receipt | None,
        snapshot: PositionInfo | None,
        ledger: Ledger,
        *,
        fees: bool,
    ) -> None:
        """What left the pool: from the receipt's events (principal = DecreaseLiquidity, fees =
        Collect − DecreaseLiquidity), else from Gateway's answer, whose "removed" amounts
        include what was owed (so principal = removed − collected fees)."""
        if receipt is not None:
            flows = receipt.position_flows(position)
            ledger.add("removed", human(pool, flows.decreased), "receipt")
            if fees:
                ledger.add("fees", human(pool, flows.fees), "receipt")
            return
        base_is_token0 = (
            snapshot.base_is_token0 if snapshot is not None else position_route_base_is_token0(pool)
        )
        fee_base = result.amount("baseFeeAmountCollected")
        fee_quote = result.amount("quoteFeeAmountCollected")
        removed_base = result.amount("baseTokenAmountRemoved") - fee_base
        removed_quote = result.amount("quoteTokenAmountRemoved") - fee_quote
        if ("baseTokenAmountRemoved" not in result.data) and snapshot is not None:
            removed_base, removed_quote = snapshot.base_token_amount, snapshot.quote_token_amount
        ledger.add("removed", to_token01(removed_base, removed_quote, base_is_token0), "gateway")
        if fees:
            ledger.add("fees", to_token01(fee_base, fee_quote, base_is_token0), "gateway")

    @staticmethod
    def _account_snapshot(snapshot: PositionInfo, ledger: Ledger) -> None:
        """A close that went through without an answer: the last read is all we have."""
        ledger.add("removed", snapshot.token_amounts(), "gateway")
        ledger.add("fees", snapshot.token_fees(), "gateway")


def same_range(position: PositionInfo, request: ExecutionRequest) -> bool:
    """Our range: the position's ticks are the request's (Gateway reports them as bin ids)."""
    return (position.lower_tick, position.upper_tick) == (request.tick_lower, request.tick_upper)
