"""Real (live) execution of one LP position through Hummingbot Gateway.

``execute``: validate the pool → size it (size_usd × risk_scalar, as the mock) → quote the same
range → read balances and allowances → live-risk gates → approvals (policy) → open → hold for the
horizon (sampling the pool price on the injected clock) → close (or remove 100 % + collect when
close fails) → outcome from what the transactions moved.

The writes, their receipts and the reconciliation of ambiguous ones (never re-sent) are in
:mod:`env.real_positions`; balances/approvals in :mod:`env.real_funds`; valuation and the
outcome record in :mod:`env.real_outcome`.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.env.base import (
    EnvHealth,
    ExecutionOutcome,
    ExecutionRequest,
    ExecutionSkipped,
    PoolSpec,
    PoolValidationError,
    attach_transactions,
)
from clmmd.env.gates import GATE_QUOTE, check_gates
from clmmd.env.gateway import GatewayClient, PoolInfo, PositionQuote, Venue, client_from_settings
from clmmd.env.gateway_errors import GatewayError, GatewayUnreachable
from clmmd.env.mock import validate_request
from clmmd.env.pricing import liquidity_for_value_usd, usd_price_to_tick
from clmmd.env.real_funds import (
    APPROVAL_POLICIES,
    ApprovalPolicy,
    FundsCheck,
    approve_shortfall,
    check_funds,
    needs,
)
from clmmd.env.real_ledger import Ledger
from clmmd.env.real_outcome import (
    LiveRun,
    current_tick,
    gateway_price_range,
    live_outcome,
    quote_token01,
    value_usd,
    volatile_usd_price,
)
from clmmd.env.real_positions import LiveExecutionError, LivePositionWriter
from clmmd.env.real_receipts import ReceiptSource
from clmmd.env.uniswap_math import tick_to_price
from clmmd.env.validator import validate_pool

# These were defined here before the split; callers and tests import them from this module.
__all__ = [
    "LiveExecutionError",
    "RealClmmEnv",
    "current_tick",
    "gateway_price_range",
    "real_env_from_settings",
    "volatile_usd_price",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Plan:
    """What the checks decided before the first write: the position to open."""

    pool: PoolSpec
    request: ExecutionRequest
    info: PoolInfo
    prices: tuple[float, float]
    size: float
    quote: PositionQuote
    quoted_usd: float
    shift: int


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
        approval_policy: ApprovalPolicy = "exact",
        chain_rpc_url: str | None = None,
    ) -> None:
        if approval_policy not in APPROVAL_POLICIES:
            raise ValueError(f"approval_policy must be one of {APPROVAL_POLICIES}")
        self.client = client
        self.wallet = wallet_address
        self.venue = Venue(chain=chain, network=network, connector=connector)
        self.live_risk_ack = live_risk_ack
        self.max_position_usd = max_position_usd
        self.exec_mode = exec_mode
        self.clock = clock
        self.slippage_pct = slippage_pct
        self.sample_interval_s = sample_interval_s
        self.approval_policy: ApprovalPolicy = approval_policy
        self.receipts = ReceiptSource(client, self.venue, clock, chain_rpc_url)
        self.positions = LivePositionWriter(
            client,
            self.venue,
            wallet_address,
            clock,
            receipts=self.receipts,
            slippage_pct=slippage_pct,
            reconcile_checks=reconcile_checks,
            reconcile_interval_s=reconcile_interval_s,
            confirm_timeout_s=confirm_timeout_s,
            poll_interval_s=poll_interval_s,
        )

    async def health(self) -> EnvHealth:
        """``ok`` with Gateway's round trip in ms, ``unreachable``, or ``error: ...``."""
        try:
            latency = await self.client.health()
        except GatewayUnreachable:
            return EnvHealth("unreachable")
        except GatewayError as exc:
            return EnvHealth(f"error: {exc}")
        return EnvHealth("ok", round(latency, 3))

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        """Run ``request`` live: the steps in this module's docstring, in that order."""
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
        request, shift = anchor_to_live_price(request, pool, info)
        size = request.size_usd * request.risk_scalar
        prices = gateway_price_range(pool, request.tick_lower, request.tick_upper)
        usd_open = volatile_usd_price(pool, info)
        _, raw0, raw1 = liquidity_for_value_usd(
            pool,
            size,
            usd_open,
            tick_to_price(request.tick_lower),
            tick_to_price(request.tick_upper),
        )
        amt0, amt1 = raw0 / 10.0**pool.decimals0, raw1 / 10.0**pool.decimals1
        # quote-position and open-position take amounts in pool-info's orientation.
        base_amt, quote_amt = (amt0, amt1) if info.base_is_token0 else (amt1, amt0)
        quote: PositionQuote | None = None
        quote_error = ""
        try:
            quote = await self.client.quote_position(
                self.venue,
                pool.address,
                prices[0],
                prices[1],
                base_amt if base_amt > 0 else None,
                quote_amt if quote_amt > 0 else None,
                self.slippage_pct,
            )
        except GatewayError as exc:
            quote_error = str(exc)
        quoted_usd = value_usd(pool, quote_token01(info, quote), usd_open) if quote else 0.0
        funds = await self._funds(pool, info, quote) if quote is not None else None
        try:
            check_gates(
                exec_mode=self.exec_mode,
                live_risk_ack=self.live_risk_ack,
                # The pool Gateway described is the one the open will name.
                pool_validated=validated.info.address.lower() == pool.address.lower(),
                quote_ok=quote is not None,
                size_usd=max(size, quoted_usd),
                max_position_usd=self.max_position_usd,
                funds_short=funds.short_balances if funds else (),
                allowance_missing=(
                    tuple(n.symbol for n in funds.to_approve)
                    if funds and self.approval_policy == "never"
                    else ()
                ),
            )
        except ExecutionSkipped as exc:
            if exc.gate == GATE_QUOTE and quote_error:
                raise ExecutionSkipped(GATE_QUOTE, f"quote failed: {quote_error}") from None
            raise
        assert quote is not None and funds is not None
        ledger = Ledger()
        try:
            await approve_shortfall(
                self.client,
                self.venue,
                self.wallet,
                funds,
                self.approval_policy,
                ledger,
                self.positions,
            )
            log.info("live_open", pool=pool.address, prices=prices, size_usd=size)
            return await self._open_hold_close(
                _Plan(pool, request, info, prices, size, quote, quoted_usd, shift), ledger
            )
        except Exception as exc:
            # Gas already paid (approvals, a mined open) is money spent: it goes with the error
            # into failure.json instead of vanishing with the episode's ledger.
            if ledger.transactions:
                spent = [t.as_json() for t in ledger.transactions]
                attach_transactions(exc, spent)
                log.error(
                    "live_spent_before_failure",
                    transactions=spent,
                    gas_native=ledger.gas_native,
                    hint="the gas is spent; failure.json lists these transactions (approvals "
                    "stay granted and are reused by the next open)",
                )
            raise

    async def _open_hold_close(self, plan: _Plan, ledger: Ledger) -> ExecutionOutcome:
        """Open the planned position, hold it for the horizon, close it; every transaction
        goes into ``ledger``."""
        pool, request, info = plan.pool, plan.request, plan.info
        position, reconciled = await self.positions.open(
            pool, request, info, plan.prices, plan.quote, ledger
        )
        # The position id in the episode's logs is what restart reconciliation looks for.
        log.info(
            "live_opened",
            position=position,
            pool=pool.address,
            tick_lower=request.tick_lower,
            tick_upper=request.tick_upper,
            reconciled=reconciled,
        )
        tick_open = current_tick(pool, info)
        try:
            in_range, samples, info_close = await self._hold(pool, request, info)
            close_method = await self.positions.close(pool, position, ledger)
        except asyncio.CancelledError:
            await self._close_on_cancel(pool, position, ledger)
            raise
        except BaseException as exc:
            # Say loudly what is left on chain: the operator has to deal with it.
            may_be_open(position, pool, exc)
            raise
        run = LiveRun(
            pool=pool,
            request=request,
            venue=self.venue,
            wallet_address=self.wallet,
            route_family=self.client.route_family,
            info=info,
            info_close=info_close,
            lower=plan.prices[0],
            upper=plan.prices[1],
            size=plan.size,
            quote=plan.quote,
            quoted_usd=plan.quoted_usd,
            ledger=ledger,
            position=position,
            reconciled=reconciled,
            close_method=close_method,
            tick_open=tick_open,
            in_range=in_range,
            samples=samples,
            approval_policy=self.approval_policy,
            receipts_source=self.receipts.source,
            range_shift_ticks=plan.shift,
        )
        return live_outcome(run)

    async def _close_on_cancel(self, pool: PoolSpec, position: str, ledger: Ledger) -> None:
        """Stopped while holding (SIGTERM past the drain deadline): close before leaving.

        The close is shielded from a second cancellation; whatever happens is logged into the
        episode's logs, and the next start reconciles with the chain either way."""
        log.warning("live_close_on_cancel", position=position, pool=pool.address)
        try:
            method = await asyncio.shield(self.positions.close(pool, position, ledger))
        except BaseException as exc:
            may_be_open(position, pool, exc)
            return
        log.warning(
            "live_closed_on_cancel",
            position=position,
            close_method=method,
            transactions=[t.as_json() for t in ledger.transactions],
            token0_removed=ledger.removed[0],
            token1_removed=ledger.removed[1],
            token0_fees=ledger.fees[0],
            token1_fees=ledger.fees[1],
            gas_native=ledger.gas_native,
        )

    async def _funds(self, pool: PoolSpec, info: PoolInfo, quote: PositionQuote) -> FundsCheck:
        """Balances and allowances for what the open will send (the quote's amounts)."""
        amount0, amount1 = quote_token01(info, quote)
        try:
            return await check_funds(
                self.client, self.venue, self.wallet, needs(pool, amount0, amount1)
            )
        except GatewayError as exc:
            return FundsCheck((f"balances could not be read: {exc}",), (), {}, {})

    # --- steps ---

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


def may_be_open(position: str, pool: PoolSpec, exc: BaseException) -> None:
    """The ERROR line that names a position a failed or stopped episode may have left open."""
    log.error(
        "live_position_may_be_open",
        position=position,
        pool=pool.address,
        error=f"{type(exc).__name__}: {exc}",
        hint="the next start in real mode reconciles it (reconciliation.json); or close it in "
        "Gateway by hand (positions-owned lists it)",
    )


def anchor_to_live_price(
    request: ExecutionRequest, pool: PoolSpec, info: PoolInfo
) -> tuple[ExecutionRequest, int]:
    """The proposal's range moved, whole tick spacings at a time, from the price it was centred
    on (the intel snapshot's, else the pool's reference) to the live pool price.

    The agent chose a width around the price it saw; a stale snapshot would otherwise put the
    range beside the market (a one-sided deposit that earns nothing). Returns the request and
    the shift in ticks (0 when the snapshot was current).
    """
    anchor_usd = request.market.price_usd or pool.reference_price_usd
    if not (anchor_usd and math.isfinite(anchor_usd) and anchor_usd > 0):
        return request, 0
    drift = current_tick(pool, info) - usd_price_to_tick(pool, anchor_usd)
    shift = round(drift / pool.tick_spacing) * pool.tick_spacing
    if shift == 0:
        return request, 0
    log.info("live_range_anchored", shift_ticks=shift, tick_lower=request.tick_lower + shift)
    moved = replace(
        request, tick_lower=request.tick_lower + shift, tick_upper=request.tick_upper + shift
    )
    return moved, shift


def real_env_from_settings(settings_like: Any, clock: Clock) -> RealClmmEnv:
    """The real env from configuration-like attributes; refuses to run outside real mode.

    Needs ``exec_mode == "real"``, ``gateway_wallet_address`` and ``max_position_usd``;
    optional ``gateway_chain`` (ethereum), ``gateway_network`` (mainnet), ``gateway_connector``
    (uniswap), ``gateway_slippage_pct`` (1.0), ``gateway_sample_interval_s`` (300),
    ``gateway_approval_policy`` (exact), ``chain_rpc_url`` (else Gateway's node), plus what
    :func:`client_from_settings` reads.
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
        sample_interval_s=float(getattr(settings_like, "gateway_sample_interval_s", 300.0)),
        approval_policy=getattr(settings_like, "gateway_approval_policy", "exact"),
        chain_rpc_url=_secret(getattr(settings_like, "chain_rpc_url", None)),
    )


def _secret(value: Any) -> str | None:
    if value is not None and hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return str(value) if value else None
