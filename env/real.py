"""Real (live) execution of one LP position through Hummingbot Gateway.

``execute``: validate the pool → size it (size_usd × risk_scalar, as the mock) → quote the same
range → live-risk gates → open → hold for the horizon (sampling the pool price on the injected
clock) → close (or remove 100 % + collect fees when close fails) → outcome from the amounts.

Ambiguous writes are never re-sent. An open that comes back without a transaction hash (Gateway
answers 500 while the transaction is still pending, or the answer is lost) is reconciled with
positions-owned: a new position in our range means it went through; none means it failed. A
close that fails is checked the same way before falling back. A reverted transaction (receipt
status 0, Gateway's -1) raises :class:`~env.gateway_errors.TransactionReverted` with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from env.base import (
    EnvHealth,
    ExecutionOutcome,
    ExecutionRequest,
    ExecutionSkipped,
    PoolSpec,
    PoolValidationError,
)
from env.gates import GATE_QUOTE, check_gates
from env.gateway import (
    TX_CONFIRMED,
    TX_FAILED,
    GatewayClient,
    PoolInfo,
    PositionInfo,
    PositionQuote,
    Venue,
    WriteResult,
    client_from_settings,
)
from env.gateway_errors import (
    GatewayError,
    GatewayServerError,
    GatewayUnreachable,
    TransactionNotConfirmed,
    TransactionReverted,
)
from env.mock import validate_request
from env.pricing import liquidity_for_value_usd, token_usd_prices
from env.uniswap_math import price_to_tick, tick_to_price
from env.validator import human_price_at_tick, validate_pool
from service.clock import Clock

log = structlog.get_logger(__name__)


class LiveExecutionError(Exception):
    """A live step failed in a way the operator must look at (message says what to check)."""


@dataclass
class _Legs:
    """What the writes reported, in base/quote human units."""

    transactions: list[str]
    gas_native: float = 0.0
    base_added: float = 0.0
    quote_added: float = 0.0
    base_removed: float = 0.0
    quote_removed: float = 0.0
    base_fees: float = 0.0
    quote_fees: float = 0.0


def volatile_usd_price(pool: PoolSpec, info: PoolInfo) -> float:
    """USD price of the pool's non-stable token from Gateway's quote-per-base price."""
    token1_per_token0 = info.price if info.base_is_token0 else 1.0 / info.price
    return 1.0 / token1_per_token0 if pool.stable_token == 0 else token1_per_token0


def gateway_price_range(
    pool: PoolSpec, tick_lower: int, tick_upper: int, base_is_token0: bool
) -> tuple[float, float]:
    """``(lowerPrice, upperPrice)`` in Gateway's orientation (quote per base, human units)."""
    a = human_price_at_tick(pool, tick_lower, base_is_token0)
    b = human_price_at_tick(pool, tick_upper, base_is_token0)
    return (a, b) if a <= b else (b, a)


def current_tick(pool: PoolSpec, info: PoolInfo) -> int:
    if info.active_tick is not None:
        return info.active_tick
    token1_per_token0 = info.price if info.base_is_token0 else 1.0 / info.price
    return price_to_tick(token1_per_token0 * 10.0 ** (pool.decimals1 - pool.decimals0))


class RealClmmEnv:
    """:class:`env.base.ClmmEnv` executing through Gateway. Build it only in real mode."""

    name: Literal["mock", "real"] = "real"

    def __init__(
        self,
        *,
        client: GatewayClient,
        wallet_address: str,
        chain: str,
        network: str,
        connector: str = "uniswap",
        live_risk_ack: bool,
        max_position_usd: float,
        clock: Clock,
        exec_mode: str = "real",
        slippage_pct: float | None = 1.0,
        sample_interval_s: float = 300.0,
        reconcile_checks: int = 6,
        reconcile_interval_s: float = 10.0,
        confirm_timeout_s: float = 600.0,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.client = client
        self.wallet = wallet_address
        self.venue = Venue(chain=chain, network=network, connector=connector)
        self.live_risk_ack = live_risk_ack
        self.max_position_usd = max_position_usd
        self.exec_mode = exec_mode
        self.clock = clock
        self.slippage_pct = slippage_pct
        self.sample_interval_s = sample_interval_s
        self.reconcile_checks = reconcile_checks
        self.reconcile_interval_s = reconcile_interval_s
        self.confirm_timeout_s = confirm_timeout_s
        self.poll_interval_s = poll_interval_s

    async def health(self) -> EnvHealth:
        try:
            latency = await self.client.health()
        except GatewayUnreachable:
            return EnvHealth("unreachable")
        except GatewayError as exc:
            return EnvHealth(f"error: {exc}")
        return EnvHealth("ok", round(latency, 3))

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        validate_request(request)
        pool = request.pool
        for field, ours, theirs in (
            ("chain", self.venue.chain, pool.chain),
            ("network", self.venue.network, pool.network),
        ):
            if ours != theirs:
                raise PoolValidationError(field, f"pool is on {theirs!r}, this env on {ours!r}")
        validated = await validate_pool(self.client, self.venue, pool)
        pool, info = validated.pool, validated.info
        size = request.size_usd * request.risk_scalar
        lower, upper = gateway_price_range(
            pool, request.tick_lower, request.tick_upper, info.base_is_token0
        )
        usd_open = volatile_usd_price(pool, info)
        _, raw0, raw1 = liquidity_for_value_usd(
            pool,
            size,
            usd_open,
            tick_to_price(request.tick_lower),
            tick_to_price(request.tick_upper),
        )
        amt0, amt1 = raw0 / 10.0**pool.decimals0, raw1 / 10.0**pool.decimals1
        base_amt, quote_amt = (amt0, amt1) if info.base_is_token0 else (amt1, amt0)
        quote: PositionQuote | None = None
        quote_error = ""
        try:
            quote = await self.client.quote_position(
                self.venue,
                pool.address,
                lower,
                upper,
                base_amt if base_amt > 0 else None,
                quote_amt if quote_amt > 0 else None,
                self.slippage_pct,
            )
        except GatewayError as exc:
            quote_error = str(exc)
        quoted_usd = (
            self._value_usd(pool, info, quote.base_token_amount, quote.quote_token_amount, usd_open)
            if quote
            else 0.0
        )
        try:
            check_gates(
                self.exec_mode,
                self.live_risk_ack,
                True,
                quote is not None,
                max(size, quoted_usd),
                self.max_position_usd,
            )
        except ExecutionSkipped as exc:
            if exc.gate == GATE_QUOTE and quote_error:
                raise ExecutionSkipped(GATE_QUOTE, f"quote failed: {quote_error}") from None
            raise
        assert quote is not None
        log.info("live_open", pool=pool.address, lower=lower, upper=upper, size_usd=size)
        legs = _Legs(transactions=[])
        position, reconciled = await self._open(pool, request, lower, upper, quote, legs)
        tick_open = current_tick(pool, info)
        try:
            in_range, samples, info_close = await self._hold(pool, request, info)
            close_method = await self._close(pool, position, legs)
        except BaseException as exc:
            # Say loudly what is left on chain: the operator has to deal with it.
            log.error(
                "live_position_may_be_open",
                position=position,
                pool=pool.address,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        usd_close = volatile_usd_price(pool, info_close)
        eth_usd, eth_source = self._eth_price(pool, request, usd_close)
        gas_usd = legs.gas_native * eth_usd
        initial = self._value_usd(pool, info, legs.base_added, legs.quote_added, usd_open)
        lp_end = self._value_usd(pool, info, legs.base_removed, legs.quote_removed, usd_close)
        fees = self._value_usd(pool, info, legs.base_fees, legs.quote_fees, usd_close)
        hold_end = self._value_usd(pool, info, legs.base_added, legs.quote_added, usd_close)
        if samples:
            time_in_range = 100.0 * in_range / samples
        else:
            time_in_range = 100.0 if request.tick_lower <= tick_open < request.tick_upper else 0.0
        simulation: dict[str, Any] = {
            "source": "live",
            "transactions": list(legs.transactions),
            "position_id": position,
            "open_reconciled": reconciled,
            "close_method": close_method,
            "route_family": self.client.route_family,
            "chain": self.venue.chain,
            "network": self.venue.network,
            "connector": self.venue.connector,
            "pool_address": pool.address,
            "wallet_address": self.wallet,
            "tick_lower": request.tick_lower,
            "tick_upper": request.tick_upper,
            "lower_price": lower,
            "upper_price": upper,
            "price_open": info.price,
            "price_close": info_close.price,
            "base_is_token0": info.base_is_token0,
            "quote": {
                "base_token_amount": quote.base_token_amount,
                "quote_token_amount": quote.quote_token_amount,
                "base_token_amount_max": quote.base_token_amount_max,
                "quote_token_amount_max": quote.quote_token_amount_max,
                "value_usd": quoted_usd,
            },
            "base_token_amount_added": legs.base_added,
            "quote_token_amount_added": legs.quote_added,
            "base_token_amount_removed": legs.base_removed,
            "quote_token_amount_removed": legs.quote_removed,
            "base_fee_collected": legs.base_fees,
            "quote_fee_collected": legs.quote_fees,
            "initial_value_usd": initial,
            "lp_value_end_usd": lp_end,
            "hold_value_end_usd": hold_end,
            "gas_paid_native": legs.gas_native,
            "gas_paid_usd": gas_usd,
            "eth_price_usd": eth_usd,
            "eth_price_source": eth_source,
            "price_samples": samples,
            "horizon_hours": request.horizon_hours,
        }
        return ExecutionOutcome(
            pnl_usd=lp_end + fees - initial - gas_usd,
            fees_usd=fees,
            gas_cost_usd=gas_usd,
            il_usd=hold_end - lp_end,
            time_in_range_pct=time_in_range,
            risk_scalar_applied=request.risk_scalar,
            size_usd_applied=size,
            simulation=simulation,
        )

    # --- steps ---

    async def _open(
        self,
        pool: PoolSpec,
        request: ExecutionRequest,
        lower: float,
        upper: float,
        quote: PositionQuote,
        legs: _Legs,
    ) -> tuple[str, bool]:
        """Open once; returns (position id, whether it had to be reconciled)."""
        before = {
            p.address
            for p in await self.client.positions_owned(self.venue, self.wallet, pool.address)
        }
        try:
            result = await self.client.open_position(
                self.venue,
                self.wallet,
                pool.address,
                lower,
                upper,
                quote.base_token_amount or None,
                quote.quote_token_amount or None,
                self.slippage_pct,
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
        for check in range(1, self.reconcile_checks + 1):
            try:
                owned = await self.client.positions_owned(self.venue, self.wallet, pool.address)
            except GatewayError as exc:
                log.warning("live_reconcile_read_failed", check=check, error=str(exc))
                owned = []
            for position in owned:
                if position.address not in before and _same_range(position, request, prices):
                    log.info("live_open_reconciled", position=position.address, check=check)
                    return position
            if check < self.reconcile_checks:
                await self.clock.sleep(self.reconcile_interval_s)
        raise LiveExecutionError(
            f"open failed ({why}); no new position in ticks [{request.tick_lower}, "
            f"{request.tick_upper}) appeared after {self.reconcile_checks} checks. The open was "
            "not re-sent; check the wallet's pending transactions before retrying"
        )

    async def _settle(self, result: WriteResult, legs: _Legs) -> WriteResult:
        """Wait out a pending write; raise on a reverted one. Records hash and gas."""
        legs.transactions.append(result.signature)
        if result.status == TX_FAILED:
            poll = await self.client.poll(self.venue, result.signature)
            raise TransactionReverted(result.signature, poll.error or "Gateway reported failure")
        if result.status != TX_CONFIRMED:
            poll = await self.client.wait_confirmed(
                self.venue,
                result.signature,
                interval_s=self.poll_interval_s,
                timeout_s=self.confirm_timeout_s,
            )
            legs.gas_native += poll.fee_native or result.fee_native
            return result
        legs.gas_native += result.fee_native
        return result

    async def _hold(
        self, pool: PoolSpec, request: ExecutionRequest, info_open: PoolInfo
    ) -> tuple[int, int, PoolInfo]:
        """Sleep the horizon in steps, sampling whether the price is in range."""
        horizon_s = request.horizon_hours * 3600.0
        elapsed, in_range, samples, last = 0.0, 0, 0, info_open
        while elapsed < horizon_s:
            step = min(self.sample_interval_s, horizon_s - elapsed)
            await self.clock.sleep(step)
            elapsed += step
            try:
                last = await self.client.pool_info(self.venue, pool.address)
            except GatewayError as exc:
                log.warning("live_price_sample_failed", error=str(exc))
                continue
            samples += 1
            tick = current_tick(pool, last)
            in_range += request.tick_lower <= tick < request.tick_upper
        return in_range, samples, last

    async def _close(self, pool: PoolSpec, position: str, legs: _Legs) -> str:
        """Close; if that fails and the position still exists, remove 100 % and collect fees."""
        snapshot: PositionInfo | None = None
        try:
            snapshot = await self.client.position_info(
                self.venue, self.wallet, position, pool.address
            )
        except GatewayError as exc:
            log.warning("live_position_snapshot_failed", error=str(exc))
        try:
            result = await self._settle(
                await self.client.close_position(self.venue, self.wallet, position, pool.address),
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
        checks = self.reconcile_checks if ambiguous else 1
        for check in range(1, checks + 1):
            try:
                owned = await self.client.positions_owned(self.venue, self.wallet, pool.address)
            except GatewayError as exc:
                log.warning("live_reconcile_read_failed", check=check, error=str(exc))
            else:
                if not any(p.address == position for p in owned):
                    log.info("live_close_reconciled", position=position, check=check)
                    self._removed(legs, None, snapshot, fees_in_answer=False)
                    return "close_reconciled"
            if check < checks:
                await self.clock.sleep(self.reconcile_interval_s)
        try:
            removed = await self._settle(
                await self.client.remove_liquidity(
                    self.venue, self.wallet, position, pool.address, 100.0
                ),
                legs,
            )
            collected = await self._settle(
                await self.client.collect_fees(self.venue, self.wallet, position, pool.address),
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
        legs: _Legs, result: WriteResult | None, snapshot: PositionInfo | None, fees_in_answer: bool
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

    # --- valuation ---

    @staticmethod
    def _value_usd(
        pool: PoolSpec, info: PoolInfo, base: float, quote: float, usd_price: float
    ) -> float:
        amt0, amt1 = (base, quote) if info.base_is_token0 else (quote, base)
        usd0, usd1 = token_usd_prices(pool, usd_price)
        return amt0 * usd0 + amt1 * usd1

    @staticmethod
    def _eth_price(
        pool: PoolSpec, request: ExecutionRequest, usd_close: float
    ) -> tuple[float, str]:
        given = request.market.eth_price_usd
        if given is not None and math.isfinite(given) and given > 0:
            return float(given), "intel"
        volatile = pool.token1 if pool.stable_token == 0 else pool.token0
        if volatile.upper() in ("WETH", "ETH"):
            return usd_close, "pool_price"
        return pool.reference_price_usd, "reference_price"


def _same_range(
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


def real_env_from_settings(settings_like: Any, clock: Clock) -> RealClmmEnv:
    """The real env from configuration-like attributes; refuses to run outside real mode.

    Needs ``exec_mode == "real"``, ``gateway_wallet_address`` and ``max_position_usd``;
    optional ``gateway_chain`` (ethereum), ``gateway_network`` (mainnet), ``gateway_connector``
    (uniswap), ``gateway_slippage_pct`` (1.0), plus what :func:`client_from_settings` reads.
    ``live_risk_ack`` is true only for the verbatim ``"yes"``.
    """
    if getattr(settings_like, "exec_mode", None) != "real":
        raise ValueError("the real environment is only built when EXEC_MODE is real")
    wallet = getattr(settings_like, "gateway_wallet_address", None)
    limit = getattr(settings_like, "max_position_usd", None)
    if not wallet or limit is None:
        raise ValueError("real mode needs gateway_wallet_address and max_position_usd configured")
    return RealClmmEnv(
        client=client_from_settings(settings_like, clock),
        wallet_address=str(wallet),
        chain=str(getattr(settings_like, "gateway_chain", "ethereum")),
        network=str(getattr(settings_like, "gateway_network", "mainnet")),
        connector=str(getattr(settings_like, "gateway_connector", "uniswap")),
        live_risk_ack=getattr(settings_like, "live_risk_ack", None) == "yes",
        max_position_usd=float(limit),
        clock=clock,
        exec_mode="real",
        slippage_pct=getattr(settings_like, "gateway_slippage_pct", 1.0),
    )
