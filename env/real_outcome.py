"""What a live run earned: valuation of the legs in USD and the :class:`ExecutionOutcome`.

Prices come from Gateway's pool-info (quote per base, human units) and are turned into the
pool's token0/token1 orientation here, so the outcome is comparable with the mock's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from clmmd.env.base import ExecutionOutcome, ExecutionRequest, PoolSpec
from clmmd.env.gateway import PoolInfo, PositionQuote, RouteFamily, Venue
from clmmd.env.pricing import token_usd_prices
from clmmd.env.real_positions import Legs
from clmmd.env.uniswap_math import price_to_tick
from clmmd.env.validator import human_price_at_tick


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


def value_usd(pool: PoolSpec, info: PoolInfo, base: float, quote: float, usd_price: float) -> float:
    """USD value of ``base``/``quote`` amounts when the volatile token is at ``usd_price``."""
    amt0, amt1 = (base, quote) if info.base_is_token0 else (quote, base)
    usd0, usd1 = token_usd_prices(pool, usd_price)
    return amt0 * usd0 + amt1 * usd1


def eth_price(pool: PoolSpec, request: ExecutionRequest, usd_close: float) -> tuple[float, str]:
    """The ETH price for gas, and where it came from: intel, this pool, or the reference."""
    given = request.market.eth_price_usd
    if given is not None and math.isfinite(given) and given > 0:
        return float(given), "intel"
    volatile = pool.token1 if pool.stable_token == 0 else pool.token0
    if volatile.upper() in ("WETH", "ETH"):
        return usd_close, "pool_price"
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
    legs: Legs
    position: str
    reconciled: bool
    close_method: str
    tick_open: int
    in_range: int
    samples: int


def live_outcome(run: LiveRun) -> ExecutionOutcome:
    """PnL, fees, gas, IL and time in range of ``run``, with the full record as ``simulation``."""
    pool, request, info, info_close = run.pool, run.request, run.info, run.info_close
    quote, legs = run.quote, run.legs
    usd_open = volatile_usd_price(pool, info)
    usd_close = volatile_usd_price(pool, info_close)
    eth_usd, eth_source = eth_price(pool, request, usd_close)
    gas_usd = legs.gas_native * eth_usd
    initial = value_usd(pool, info, legs.base_added, legs.quote_added, usd_open)
    lp_end = value_usd(pool, info, legs.base_removed, legs.quote_removed, usd_close)
    fees = value_usd(pool, info, legs.base_fees, legs.quote_fees, usd_close)
    hold_end = value_usd(pool, info, legs.base_added, legs.quote_added, usd_close)
    if run.samples:
        time_in_range = 100.0 * run.in_range / run.samples
    else:
        time_in_range = 100.0 if request.tick_lower <= run.tick_open < request.tick_upper else 0.0
    simulation: dict[str, Any] = {
        "source": "live",
        "transactions": list(legs.transactions),
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
        "lower_price": run.lower,
        "upper_price": run.upper,
        "price_open": info.price,
        "price_close": info_close.price,
        "base_is_token0": info.base_is_token0,
        "quote": {
            "base_token_amount": quote.base_token_amount,
            "quote_token_amount": quote.quote_token_amount,
            "base_token_amount_max": quote.base_token_amount_max,
            "quote_token_amount_max": quote.quote_token_amount_max,
            "value_usd": run.quoted_usd,
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
