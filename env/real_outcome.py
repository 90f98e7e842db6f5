"""What a live run earned: valuation of the legs in USD and the :class:`ExecutionOutcome`.

Prices come from Gateway's pool-info (quote per base, human units, oriented by the token
addresses it carries) and amounts from the episode's :class:`~env.real_ledger.Ledger` (token0 /
token1, from receipts where the node could be read), so the outcome is comparable with the
mock's. PnL = HODL return − IL + fees − gas, every leg valued at the close price except the
deposit's value at the open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from clmmd.env.base import ExecutionOutcome, ExecutionRequest, PoolSpec
from clmmd.env.gateway import PoolInfo, PositionQuote, RouteFamily, Venue
from clmmd.env.pricing import token_usd_prices
from clmmd.env.real_ledger import Ledger
from clmmd.env.uniswap_math import price_to_tick
from clmmd.env.validator import human_price_at_tick


def volatile_usd_price(pool: PoolSpec, info: PoolInfo) -> float:
    """USD price of the pool's non-stable token from Gateway's quote-per-base price."""
    token1_per_token0 = info.token1_per_token0
    return 1.0 / token1_per_token0 if pool.stable_token == 0 else token1_per_token0


def gateway_price_range(pool: PoolSpec, tick_lower: int, tick_upper: int) -> tuple[float, float]:
    """``(lowerPrice, upperPrice)`` as Gateway v2.13's quote-position and open-position read
    them: token1 per token0 in human units whatever the base (they scale by 10^(d1−d0) and
    take the tick of that)."""
    a = human_price_at_tick(pool, tick_lower, True)
    b = human_price_at_tick(pool, tick_upper, True)
    return (a, b) if a <= b else (b, a)


def current_tick(pool: PoolSpec, info: PoolInfo) -> int:
    if info.active_tick is not None:
        return info.active_tick
    return price_to_tick(info.token1_per_token0 * 10.0 ** (pool.decimals1 - pool.decimals0))


def value_usd(
    pool: PoolSpec, amounts: tuple[float, float] | list[float], usd_price: float
) -> float:
    """USD value of (token0, token1) human amounts when the volatile token is at ``usd_price``."""
    usd0, usd1 = token_usd_prices(pool, usd_price)
    return amounts[0] * usd0 + amounts[1] * usd1


def quote_token01(info: PoolInfo, quote: PositionQuote) -> tuple[float, float]:
    """A quote's amounts as (token0, token1): quote-position answers in pool-info's orientation."""
    b, q = quote.base_token_amount, quote.quote_token_amount
    return (b, q) if info.base_is_token0 else (q, b)


def eth_price(pool: PoolSpec, request: ExecutionRequest, usd_close: float) -> tuple[float, str]:
    """The ETH price for gas, and where it came from: this (WETH) pool's live close price,
    else intel, else the pool's reference price."""
    volatile = pool.token1 if pool.stable_token == 0 else pool.token0
    if volatile.upper() in ("WETH", "ETH"):
        return usd_close, "pool_price"
    given = request.market.eth_price_usd
    if given is not None and math.isfinite(given) and given > 0:
        return float(given), "intel"
    return pool.reference_price_usd, "reference_price"


@dataclass(frozen=True)
class LiveRun:
    """Everything one live execution observed, from the quote to the close."""

    pool: PoolSpec
    request: ExecutionRequest
    venue: Venue
    wallet_address: str
    route_family: RouteFamily | None
    info: PoolInfo  # at the open
    info_close: PoolInfo  # the last price sample (the open's when none succeeded)
    lower: float
    upper: float
    size: float
    quote: PositionQuote
    quoted_usd: float
    ledger: Ledger
    position: str
    reconciled: bool
    close_method: str
    tick_open: int
    in_range: int
    samples: int
    approval_policy: str = "exact"
    receipts_source: str | None = None
    range_shift_ticks: int = 0


def live_outcome(run: LiveRun) -> ExecutionOutcome:
    """PnL, fees, gas, IL, HODL return and time in range of ``run``, with the full record as
    ``simulation``."""
    pool, request, info, info_close = run.pool, run.request, run.info, run.info_close
    quote, ledger = run.quote, run.ledger
    usd_open = volatile_usd_price(pool, info)
    usd_close = volatile_usd_price(pool, info_close)
    eth_usd, eth_source = eth_price(pool, request, usd_close)
    gas_usd = ledger.gas_native * eth_usd
    initial = value_usd(pool, ledger.added, usd_open)
    lp_end = value_usd(pool, ledger.removed, usd_close)
    fees = value_usd(pool, ledger.fees, usd_close)
    hold_end = value_usd(pool, ledger.added, usd_close)
    if run.samples:
        time_in_range = 100.0 * run.in_range / run.samples
    else:
        time_in_range = 100.0 if request.tick_lower <= run.tick_open < request.tick_upper else 0.0
    quoted0, quoted1 = quote_token01(info, quote)
    simulation: dict[str, Any] = {
        "source": "live",
        "transactions": ledger.hashes,
        "transaction_details": [t.as_json() for t in ledger.transactions],
        "accounting": ledger.accounting,
        "receipts_source": run.receipts_source,
        "approval_policy": run.approval_policy,
        "position_id": run.position,
        "open_reconciled": run.reconciled,
        "close_method": run.close_method,
        "route_family": run.route_family,
        "chain": run.venue.chain,
        "network": run.venue.network,
        "connector": run.venue.connector,
        "pool_address": pool.address,
        "wallet_address": run.wallet_address,
        "tick_lower": request.tick_lower,
        "tick_upper": request.tick_upper,
        "range_shift_ticks": run.range_shift_ticks,
        "lower_price": run.lower,
        "upper_price": run.upper,
        "price_open": info.price,
        "price_close": info_close.price,
        "volatile_usd_open": usd_open,
        "volatile_usd_close": usd_close,
        "quote": {
            "token0_amount": quoted0,
            "token1_amount": quoted1,
            "value_usd": run.quoted_usd,
        },
        "token0_added": ledger.added[0],
        "token1_added": ledger.added[1],
        "token0_removed": ledger.removed[0],
        "token1_removed": ledger.removed[1],
        "token0_fees": ledger.fees[0],
        "token1_fees": ledger.fees[1],
        "initial_value_usd": initial,
        "lp_value_end_usd": lp_end,
        "hold_value_end_usd": hold_end,
        "gas_paid_native": ledger.gas_native,
        "gas_paid_usd": gas_usd,
        "eth_price_usd": eth_usd,
        "eth_price_source": eth_source,
        "price_samples": run.samples,
        "horizon_hours": request.horizon_hours,
    }
    return ExecutionOutcome(
        pnl_usd=lp_end + fees - initial - gas_usd,
        fees_usd=fees,
        gas_cost_usd=gas_usd,
        il_usd=hold_end - lp_end,
        hodl_return_usd=hold_end - initial,
        time_in_range_pct=time_in_range,
        risk_scalar_applied=request.risk_scalar,
        size_usd_applied=run.size,
        simulation=simulation,
    )
