"""Uniswap V3 tick and liquidity math.

Two layers live here:

* an exact integer port of ``TickMath`` (v3-core) and ``LiquidityAmounts`` (v3-periphery): same
  inputs, same outputs as the Solidity libraries, including their rounding (``mulDiv`` floors);
* float helpers for the simulator, which walks hundreds of steps per episode and does not need
  wei-exact answers. They are approximations of the integer functions (relative error ~1e-12),
  not replacements for them.

Prices are Uniswap's: token1 per token0 in raw (smallest-unit) amounts, ``price = 1.0001**tick``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Literal

MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
Q96 = 2**96

_UINT256_MAX = 2**256 - 1
_UINT128_MAX = 2**128 - 1

# sqrt(1.0001)^-(2^i) as Q128.128, for bit i of |tick| (bit 0 is the start value below).
_TICK_BIT_FACTORS: tuple[int, ...] = (
    0xFFF97272373D413259A46990580E213A,
    0xFFF2E50F5F656932EF12357CF3C7FDCC,
    0xFFE5CACA7E10E4E61C3624EAA0941CD0,
    0xFFCB9843D60F6159C9DB58835C926644,
    0xFF973B41FA98C081472E6896DFB254C0,
    0xFF2EA16466C96A3843EC78B326B52861,
    0xFE5DEE046A99A2A811C461F1969C3053,
    0xFCBE86C7900A88AEDCFFC83B479AA3A4,
    0xF987A7253AC413176F2B074CF7815E54,
    0xF3392B0822B70005940C7A398E4B70F3,
    0xE7159475A2C29B7443B29C7FA6E889D9,
    0xD097F3BDFD2022B8845AD8F792AA5825,
    0xA9F746462D870FDF8A65DC1F90E061E5,
    0x70D869A156D2A1B890BB3DF62BAF32F7,
    0x31BE135F97D08FD981231505542FCFA6,
    0x9AA508B5B7A84E1C677DE54F3E99BC9,
    0x5D6AF8DEDB81196699C329225EE604,
    0x2216E584F5FA1EA926041BEDFE98,
    0x48A170391F7DC42444E8FA2,
)
_TICK_BIT0_FACTOR = 0xFFFCB933BD6FAD37AA2D162D1A594001

# getTickAtSqrtRatio: log base sqrt(1.0001) of 2 as Q128.128-compatible multiplier, and the
# error bounds of the log approximation (tickLow / tickHi) as published in TickMath.
_LOG_SQRT10001_MULTIPLIER = 255738958999603826347141
_TICK_LOW_OFFSET = 3402992956809132418596140100660247210
_TICK_HI_OFFSET = 291339464771989622907027621153398088495


def get_sqrt_ratio_at_tick(tick: int) -> int:
    """``sqrt(1.0001**tick) * 2**96`` (Q64.96), bit-identical to ``getSqrtRatioAtTick``."""
    if not MIN_TICK <= tick <= MAX_TICK:
        raise ValueError(f"tick {tick} outside [{MIN_TICK}, {MAX_TICK}]")
    abs_tick = abs(tick)
    ratio = _TICK_BIT0_FACTOR if abs_tick & 1 else 1 << 128
    for bit, factor in enumerate(_TICK_BIT_FACTORS, start=1):
        if abs_tick & (1 << bit):
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = _UINT256_MAX // ratio
    # Q128.128 -> Q64.96, rounding up so getTickAtSqrtRatio of the result is consistent.
    return (ratio >> 32) + (0 if ratio % (1 << 32) == 0 else 1)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """Greatest tick whose sqrt ratio is <= ``sqrt_price_x96``; port of ``getTickAtSqrtRatio``.

    The binary logarithm is computed exactly as the contract does (integer squaring), so the
    result is identical for every input in ``[MIN_SQRT_RATIO, MAX_SQRT_RATIO)``.
    """
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise ValueError(
            f"sqrt_price_x96 {sqrt_price_x96} outside [{MIN_SQRT_RATIO}, {MAX_SQRT_RATIO})"
        )
    ratio = sqrt_price_x96 << 32
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    # 14 fractional bits of log2 by repeated squaring, as in the contract (r stays < 2**129).
    for shift in range(63, 49, -1):
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << shift
        r >>= f
    log_sqrt10001 = log_2 * _LOG_SQRT10001_MULTIPLIER
    tick_low = (log_sqrt10001 - _TICK_LOW_OFFSET) >> 128
    tick_hi = (log_sqrt10001 + _TICK_HI_OFFSET) >> 128
    if tick_low == tick_hi:
        return tick_low
    return tick_hi if get_sqrt_ratio_at_tick(tick_hi) <= sqrt_price_x96 else tick_low


def _mul_div(a: int, b: int, denominator: int) -> int:
    """``FullMath.mulDiv``: floor(a*b/denominator) with a 512-bit intermediate; result < 2**256."""
    if denominator <= 0:
        raise ZeroDivisionError("mulDiv denominator is zero")
    result = (a * b) // denominator
    if result > _UINT256_MAX:
        raise OverflowError("mulDiv result exceeds uint256")
    return result


def _to_uint128(x: int) -> int:
    if x > _UINT128_MAX:
        raise OverflowError(f"liquidity {x} exceeds uint128")
    return x


def _ordered(sqrt_a: int, sqrt_b: int) -> tuple[int, int]:
    return (sqrt_b, sqrt_a) if sqrt_a > sqrt_b else (sqrt_a, sqrt_b)


def get_liquidity_for_amount0(sqrt_a: int, sqrt_b: int, amount0: int) -> int:
    """Liquidity for ``amount0`` of token0 over the range (``LiquidityAmounts``)."""
    sqrt_a, sqrt_b = _ordered(sqrt_a, sqrt_b)
    intermediate = _mul_div(sqrt_a, sqrt_b, Q96)
    return _to_uint128(_mul_div(amount0, intermediate, sqrt_b - sqrt_a))


def get_liquidity_for_amount1(sqrt_a: int, sqrt_b: int, amount1: int) -> int:
    """Liquidity for ``amount1`` of token1 over the range (``LiquidityAmounts``)."""
    sqrt_a, sqrt_b = _ordered(sqrt_a, sqrt_b)
    return _to_uint128(_mul_div(amount1, Q96, sqrt_b - sqrt_a))


def get_liquidity_for_amounts(
    sqrt_price: int, sqrt_a: int, sqrt_b: int, amount0: int, amount1: int
) -> int:
    """Maximum liquidity that ``amount0`` and ``amount1`` can provide at ``sqrt_price``."""
    sqrt_a, sqrt_b = _ordered(sqrt_a, sqrt_b)
    if sqrt_price <= sqrt_a:
        return get_liquidity_for_amount0(sqrt_a, sqrt_b, amount0)
    if sqrt_price < sqrt_b:
        liquidity0 = get_liquidity_for_amount0(sqrt_price, sqrt_b, amount0)
        liquidity1 = get_liquidity_for_amount1(sqrt_a, sqrt_price, amount1)
        return min(liquidity0, liquidity1)
    return get_liquidity_for_amount1(sqrt_a, sqrt_b, amount1)


def get_amount0_for_liquidity(sqrt_a: int, sqrt_b: int, liquidity: int) -> int:
    """Token0 amount represented by ``liquidity`` over the whole range (rounded down)."""
    sqrt_a, sqrt_b = _ordered(sqrt_a, sqrt_b)
    return _mul_div(liquidity << 96, sqrt_b - sqrt_a, sqrt_b) // sqrt_a


def get_amount1_for_liquidity(sqrt_a: int, sqrt_b: int, liquidity: int) -> int:
    """Token1 amount represented by ``liquidity`` over the whole range (rounded down)."""
    sqrt_a, sqrt_b = _ordered(sqrt_a, sqrt_b)
    return _mul_div(liquidity, sqrt_b - sqrt_a, Q96)


def get_amounts_for_liquidity(
    sqrt_price: int, sqrt_a: int, sqrt_b: int, liquidity: int
) -> tuple[int, int]:
    """``(amount0, amount1)`` held by ``liquidity`` at ``sqrt_price``."""
    sqrt_a, sqrt_b = _ordered(sqrt_a, sqrt_b)
    if sqrt_price <= sqrt_a:
        return get_amount0_for_liquidity(sqrt_a, sqrt_b, liquidity), 0
    if sqrt_price < sqrt_b:
        return (
            get_amount0_for_liquidity(sqrt_price, sqrt_b, liquidity),
            get_amount1_for_liquidity(sqrt_a, sqrt_price, liquidity),
        )
    return 0, get_amount1_for_liquidity(sqrt_a, sqrt_b, liquidity)


# --- float approximations for the simulator -------------------------------------------------

#: ln(1.0001), computed from the exact decimal: ``math.log(1.0001)`` would carry the binary
#: representation error of 1.0001, which the tick exponent multiplies up to ~1e-11.
LOG_TICK_BASE = float(Decimal("1.0001").ln())


def tick_to_price(tick: int) -> float:
    """``1.0001**tick`` as a float (raw token1 per raw token0); relative error ~1e-14."""
    return math.exp(tick * LOG_TICK_BASE)


def price_to_tick(price: float) -> int:
    """Greatest tick with ``tick_to_price(tick) <= price`` (floor). ``ValueError`` if not > 0."""
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price must be finite and > 0, got {price!r}")
    tick = math.floor(math.log(price) / LOG_TICK_BASE)
    # The log quotient can land one tick off at exact boundaries; settle it against tick_to_price.
    if tick_to_price(tick + 1) <= price:
        tick += 1
    elif tick_to_price(tick) > price:
        tick -= 1
    return tick


def liquidity_for_amounts_f(price: float, pa: float, pb: float, x: float, y: float) -> float:
    """Float ``getLiquidityForAmounts`` with plain prices (not sqrt, not Q96). Approximation."""
    pa, pb = min(pa, pb), max(pa, pb)
    sp, sa, sb = math.sqrt(price), math.sqrt(pa), math.sqrt(pb)
    if sp <= sa:
        return x * sa * sb / (sb - sa)
    if sp < sb:
        return min(x * sp * sb / (sb - sp), y / (sp - sa))
    return y / (sb - sa)


def amounts_for_liquidity_f(
    price: float, pa: float, pb: float, liquidity: float
) -> tuple[float, float]:
    """Float ``getAmountsForLiquidity`` with plain prices: ``(x, y)`` raw amounts. Approximation."""
    pa, pb = min(pa, pb), max(pa, pb)
    sp, sa, sb = math.sqrt(price), math.sqrt(pa), math.sqrt(pb)
    if sp <= sa:
        return liquidity * (sb - sa) / (sa * sb), 0.0
    if sp < sb:
        return liquidity * (sb - sp) / (sp * sb), liquidity * (sp - sa)
    return 0.0, liquidity * (sb - sa)


def usable_tick_bounds(spacing: int) -> tuple[int, int]:
    """The lowest and highest ticks that are multiples of ``spacing`` inside the tick range."""
    if spacing <= 0:
        raise ValueError(f"tick spacing must be > 0, got {spacing}")
    top = (MAX_TICK // spacing) * spacing
    return -top, top


def snap_tick(tick: int, spacing: int, mode: Literal["floor", "ceil", "nearest"]) -> int:
    """Snap ``tick`` to a multiple of ``spacing``, clamped to the usable ticks for that spacing."""
    low, high = usable_tick_bounds(spacing)
    if mode == "floor":
        snapped = (tick // spacing) * spacing
    elif mode == "ceil":
        snapped = -((-tick) // spacing) * spacing
    elif mode == "nearest":
        snapped = ((tick + spacing // 2) // spacing) * spacing
    else:
        raise ValueError(f"snap mode must be floor, ceil or nearest, got {mode!r}")
    return max(low, min(high, snapped))


def snap_range(lower: int, upper: int, spacing: int) -> tuple[int, int]:
    """Widen ``[lower, upper]`` to spacing multiples (lower floors, upper ceils) with ``lo < hi``.

    An empty range (``lower == upper`` on a multiple) becomes one spacing wide; ``ValueError`` if
    ``lower > upper``.
    """
    if lower > upper:
        raise ValueError(f"lower tick {lower} is above upper tick {upper}")
    _, high_bound = usable_tick_bounds(spacing)
    lo = snap_tick(lower, spacing, "floor")
    hi = snap_tick(upper, spacing, "ceil")
    if lo >= hi:
        if lo + spacing <= high_bound:
            hi = lo + spacing
        else:
            lo, hi = high_bound - spacing, high_bound
    return lo, hi
