"""The mock CLMM environment: one LP position simulated over a seeded price path.

Model (deliberately simple, every assumption is named here):

* **Position.** ``size = size_usd × risk_scalar`` is split at the start price into the token
  amounts that give maximal liquidity ``L_pos`` for ``[tick_lower, tick_upper]``.
* **Market.** Price follows :func:`env.pricepath.price_path` (zero-drift GBM from the seed);
  traded volume per step follows :func:`env.pricepath.volume_series`.
* **Fees.** A step earns ``fee × step_volume × L_pos / (L_active + L_pos)`` when the price at
  the start of the step is inside ``[lower, upper)``. ``L_active`` is the pool's in-range
  liquidity in the same units: the liquidity of a position worth ``active_liquidity_usd`` over
  ±10 % around the start price, held constant through the episode (the mock does not model
  liquidity moving with the price). Fees are counted in USD at the volume's USD value.
* **Gas.** One mint, one burn and one collect (:data:`GAS_UNITS_PER_EPISODE`) × gas price ×
  ETH price.
* **Outcome.** ``il_usd`` = value of holding the initial amounts at the end − value of the
  position at the end (fees excluded); ``pnl_usd`` = end position value + fees − initial value −
  gas. Stablecoins are worth exactly $1.

Missing (``None``) or unusable (non-finite, out of range) market inputs fall back to the
documented defaults below; ``simulation["defaults_used"]`` lists which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import structlog
from numpy.typing import NDArray

from clmmd.env.base import EnvHealth, ExecutionOutcome, ExecutionRequest, MarketInputs, PoolSpec
from clmmd.env.pricepath import DEFAULT_VOLUME_NOISE, price_path, volume_series
from clmmd.env.pricing import (
    liquidity_for_value_usd,
    position_value_usd,
    raw_price_from_usd,
    raw_prices_from_usd,
    ticks_to_usd_range,
)
from clmmd.env.uniswap_math import amounts_for_liquidity_f, tick_to_price, usable_tick_bounds

log = structlog.get_logger(__name__)

#: Gas units per operation (typical mainnet NonfungiblePositionManager costs, rounded up).
GAS_UNITS_MINT = 350_000
GAS_UNITS_BURN = 180_000
GAS_UNITS_COLLECT = 120_000
GAS_UNITS_PER_EPISODE = GAS_UNITS_MINT + GAS_UNITS_BURN + GAS_UNITS_COLLECT

DEFAULT_VOLATILITY_DAILY = 0.04
DEFAULT_VOLUME_USD_PER_DAY = 100_000_000.0
DEFAULT_ACTIVE_LIQUIDITY_USD = 50_000_000.0
DEFAULT_GAS_PRICE_GWEI = 20.0
#: Half-width of the band over which ``active_liquidity_usd`` is assumed to be spread.
ACTIVE_LIQUIDITY_BAND = 0.10
DEFAULT_STEP_MINUTES = 5.0


@dataclass(frozen=True)
class ResolvedMarket:
    """Market inputs after defaults were applied; ``defaults_used`` names the defaulted fields."""

    price_usd: float
    volatility_daily: float
    volume_usd_per_day: float
    active_liquidity_usd: float
    gas_price_gwei: float
    eth_price_usd: float
    defaults_used: tuple[str, ...]


def resolve_market(pool: PoolSpec, market: MarketInputs) -> ResolvedMarket:
    """Fill missing or unusable inputs with defaults (ETH price: the pool's reference price)."""
    defaults_used: list[str] = []

    def pick(name: str, default: float, allow_zero: bool) -> float:
        value = getattr(market, name)
        lowest_ok = 0.0 if allow_zero else math.nextafter(0.0, 1.0)
        if value is None or not math.isfinite(value) or value < lowest_ok:
            defaults_used.append(name)
            return default
        return float(value)

    return ResolvedMarket(
        price_usd=pick("price_usd", pool.reference_price_usd, allow_zero=False),
        volatility_daily=pick("volatility_daily", DEFAULT_VOLATILITY_DAILY, allow_zero=True),
        volume_usd_per_day=pick("volume_usd_per_day", DEFAULT_VOLUME_USD_PER_DAY, allow_zero=True),
        active_liquidity_usd=pick(
            "active_liquidity_usd", DEFAULT_ACTIVE_LIQUIDITY_USD, allow_zero=True
        ),
        gas_price_gwei=pick("gas_price_gwei", DEFAULT_GAS_PRICE_GWEI, allow_zero=True),
        eth_price_usd=pick("eth_price_usd", pool.reference_price_usd, allow_zero=False),
        defaults_used=tuple(defaults_used),
    )


def validate_request(request: ExecutionRequest) -> None:
    """``ValueError`` naming the field and value for anything the simulator cannot execute."""
    lower, upper, spacing = request.tick_lower, request.tick_upper, request.pool.tick_spacing
    if lower >= upper:
        raise ValueError(f"tick_lower={lower} must be below tick_upper={upper}")
    for name, tick in (("tick_lower", lower), ("tick_upper", upper)):
        if tick % spacing != 0:
            raise ValueError(f"{name}={tick} is not a multiple of tick spacing {spacing}")
    low_bound, high_bound = usable_tick_bounds(spacing)
    if lower < low_bound or upper > high_bound:
        raise ValueError(
            f"tick range [{lower}, {upper}] outside usable ticks [{low_bound}, {high_bound}]"
        )
    if not (math.isfinite(request.size_usd) and request.size_usd > 0):
        raise ValueError(f"size_usd={request.size_usd!r} must be finite and > 0")
    if not (math.isfinite(request.risk_scalar) and 0 < request.risk_scalar <= 1):
        raise ValueError(f"risk_scalar={request.risk_scalar!r} must be in (0, 1]")
    if not (math.isfinite(request.horizon_hours) and request.horizon_hours > 0):
        raise ValueError(f"horizon_hours={request.horizon_hours!r} must be finite and > 0")
    if request.seed < 0:
        raise ValueError(f"seed={request.seed} must be >= 0")


def gas_cost_usd(
    gas_price_gwei: float, eth_price_usd: float, gas_units: int = GAS_UNITS_PER_EPISODE
) -> float:
    """USD cost of ``gas_units`` at ``gas_price_gwei`` with ETH at ``eth_price_usd``."""
    return gas_units * gas_price_gwei * 1e-9 * eth_price_usd


def simulate(
    request: ExecutionRequest,
    market: ResolvedMarket,
    prices_usd: NDArray[np.float64],
    volumes_usd: NDArray[np.float64],
) -> ExecutionOutcome:
    """Pure core: the outcome of ``request`` over a given USD price path and per-step volumes.

    ``prices_usd`` has one more entry than ``volumes_usd`` (start of each step plus the end).
    """
    if len(prices_usd) != len(volumes_usd) + 1 or len(volumes_usd) == 0:
        raise ValueError(
            f"need len(prices_usd) == len(volumes_usd) + 1 >= 2, got "
            f"{len(prices_usd)} and {len(volumes_usd)}"
        )
    pool = request.pool
    size = request.size_usd * request.risk_scalar
    start_usd, end_usd = float(prices_usd[0]), float(prices_usd[-1])
    price_a, price_b = tick_to_price(request.tick_lower), tick_to_price(request.tick_upper)
    liquidity, amount0, amount1 = liquidity_for_value_usd(pool, size, start_usd, price_a, price_b)
    start_raw = raw_price_from_usd(pool, start_usd)
    active_liquidity = liquidity_for_value_usd(
        pool,
        market.active_liquidity_usd,
        start_usd,
        start_raw * (1 - ACTIVE_LIQUIDITY_BAND),
        start_raw * (1 + ACTIVE_LIQUIDITY_BAND),
    )[0]

    step_start_raw = raw_prices_from_usd(pool, prices_usd[:-1])
    in_range = (step_start_raw >= price_a) & (step_start_raw < price_b)
    fee_share = liquidity / (active_liquidity + liquidity)
    fees = pool.fee_fraction * fee_share * float(volumes_usd[in_range].sum())

    end0, end1 = amounts_for_liquidity_f(
        raw_price_from_usd(pool, end_usd), price_a, price_b, liquidity
    )
    lp_value_end = position_value_usd(pool, end0, end1, end_usd)
    hold_value_end = position_value_usd(pool, amount0, amount1, end_usd)
    initial_value = position_value_usd(pool, amount0, amount1, start_usd)
    gas = gas_cost_usd(market.gas_price_gwei, market.eth_price_usd)
    price_low_usd, price_high_usd = ticks_to_usd_range(pool, request.tick_lower, request.tick_upper)

    simulation: dict[str, Any] = {
        "source": "mock",
        "seed": request.seed,
        "steps": len(volumes_usd),
        "horizon_hours": request.horizon_hours,
        "start_price_usd": start_usd,
        "end_price_usd": end_usd,
        "tick_lower": request.tick_lower,
        "tick_upper": request.tick_upper,
        "price_lower_usd": price_low_usd,
        "price_upper_usd": price_high_usd,
        "liquidity": liquidity,
        "active_liquidity": active_liquidity,
        "fee_share": fee_share,
        "token0": pool.token0,
        "token1": pool.token1,
        "amount0": amount0 / 10.0**pool.decimals0,
        "amount1": amount1 / 10.0**pool.decimals1,
        "initial_value_usd": initial_value,
        "lp_value_end_usd": lp_value_end,
        "hold_value_end_usd": hold_value_end,
        "gas_units": GAS_UNITS_PER_EPISODE,
        "inputs": {
            "price_usd": market.price_usd,
            "volatility_daily": market.volatility_daily,
            "volume_usd_per_day": market.volume_usd_per_day,
            "active_liquidity_usd": market.active_liquidity_usd,
            "gas_price_gwei": market.gas_price_gwei,
            "eth_price_usd": market.eth_price_usd,
        },
        "defaults_used": list(market.defaults_used),
    }
    return ExecutionOutcome(
        pnl_usd=lp_value_end + fees - initial_value - gas,
        fees_usd=fees,
        gas_cost_usd=gas,
        il_usd=hold_value_end - lp_value_end,
        hodl_return_usd=hold_value_end - initial_value,
        time_in_range_pct=100.0 * float(in_range.mean()),
        risk_scalar_applied=request.risk_scalar,
        size_usd_applied=size,
        simulation=simulation,
    )


class MockClmmEnv:
    """:class:`env.base.ClmmEnv` that simulates the position; deterministic per request."""

    name: Literal["mock", "real"] = "mock"

    def __init__(
        self, step_minutes: float = DEFAULT_STEP_MINUTES, volume_noise: float = DEFAULT_VOLUME_NOISE
    ) -> None:
        self._step_minutes = step_minutes
        self._volume_noise = volume_noise

    async def health(self) -> EnvHealth | None:
        """Mock mode has no Gateway: nothing to report."""
        return None

    def run(self, request: ExecutionRequest) -> ExecutionOutcome:
        """Synchronous simulation (pure, well under a millisecond for a day of 5-minute steps)."""
        validate_request(request)
        market = resolve_market(request.pool, request.market)
        prices = price_path(
            request.seed,
            market.price_usd,
            market.volatility_daily,
            request.horizon_hours,
            self._step_minutes,
        )
        volumes = volume_series(
            request.seed,
            market.volume_usd_per_day,
            len(prices) - 1,
            self._step_minutes,
            self._volume_noise,
        )
        outcome = simulate(request, market, prices, volumes)
        outcome.simulation["step_minutes"] = self._step_minutes
        log.debug(
            "mock_execution_done",
            episode_id=request.episode_id,
            pnl_usd=outcome.pnl_usd,
            time_in_range_pct=outcome.time_in_range_pct,
            defaults_used=list(market.defaults_used),
        )
        return outcome

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        """Run the simulation inline: it is CPU-trivial, so no thread hop is worth its cost."""
        return self.run(request)
