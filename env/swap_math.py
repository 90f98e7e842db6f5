"""Exact ports of Uniswap V3's ``SqrtPriceMath`` and ``SwapMath.computeSwapStep`` (v3-core 1.0.1).

Same inputs, same outputs as the Solidity libraries, including every rounding direction and the
256-bit overflow fallback of ``getNextSqrtPriceFromAmount0RoundingUp``; Python integers stand in
for ``uint256``. Prices are ``sqrt(price) * 2**96`` (Q64.96), liquidity is ``uint128``, fees are
in pips (hundredths of a basis point, 500 = 0.05 %).

The replay (:mod:`env.replay_fees`) uses these to split a swap at a position's boundary the way
the pool itself steps through it; :mod:`env.v3_pool` uses them to model a whole pool.
"""

from __future__ import annotations

from typing import NamedTuple

Q96 = 1 << 96
Q128 = 1 << 128
FEE_DENOMINATOR = 1_000_000
UINT256 = 1 << 256
_UINT160_MAX = (1 << 160) - 1


def ceil_div(numerator: int, denominator: int) -> int:
    """``UnsafeMath.divRoundingUp`` / the rounding-up half of ``FullMath.mulDivRoundingUp``."""
    return -(-numerator // denominator)


def amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """Token0 between two prices for ``liquidity`` (``getAmount0Delta``, unsigned form)."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if sqrt_a <= 0:
        raise ValueError(f"sqrt price must be > 0, got {sqrt_a}")
    product = (liquidity << 96) * (sqrt_b - sqrt_a)
    if round_up:
        return ceil_div(ceil_div(product, sqrt_b), sqrt_a)
    return product // sqrt_b // sqrt_a


def amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """Token1 between two prices for ``liquidity`` (``getAmount1Delta``, unsigned form)."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    product = liquidity * (sqrt_b - sqrt_a)
    return ceil_div(product, Q96) if round_up else product >> 96


def _next_from_amount0_rounding_up(sqrt_p: int, liquidity: int, amount: int, add: bool) -> int:
    if amount == 0:
        return sqrt_p
    numerator1 = liquidity << 96
    product = amount * sqrt_p
    if add:
        # The contract takes the precise formula only when amount*price and the denominator fit
        # in 256 bits; otherwise the cheaper, differently rounded one. Both are mirrored.
        if product < UINT256:
            denominator = numerator1 + product
            if denominator < UINT256:
                return ceil_div(numerator1 * sqrt_p, denominator)
        return ceil_div(numerator1, numerator1 // sqrt_p + amount)
    if product >= UINT256 or numerator1 <= product:
        raise ValueError("getNextSqrtPriceFromAmount0RoundingUp: output exceeds reserves")
    result = ceil_div(numerator1 * sqrt_p, numerator1 - product)
    if result > _UINT160_MAX:
        raise ValueError("getNextSqrtPriceFromAmount0RoundingUp: price exceeds uint160")
    return result


def _next_from_amount1_rounding_down(sqrt_p: int, liquidity: int, amount: int, add: bool) -> int:
    if add:
        result = sqrt_p + (amount << 96) // liquidity
        if result > _UINT160_MAX:
            raise ValueError("getNextSqrtPriceFromAmount1RoundingDown: price exceeds uint160")
        return result
    quotient = ceil_div(amount << 96, liquidity)
    if sqrt_p <= quotient:
        raise ValueError("getNextSqrtPriceFromAmount1RoundingDown: output exceeds reserves")
    return sqrt_p - quotient


def next_sqrt_price_from_input(
    sqrt_p: int, liquidity: int, amount_in: int, zero_for_one: bool
) -> int:
    """``getNextSqrtPriceFromInput``: the price after ``amount_in`` goes in (rounds against
    the trader)."""
    if sqrt_p <= 0 or liquidity <= 0:
        raise ValueError("getNextSqrtPriceFromInput needs a price and liquidity > 0")
    if zero_for_one:
        return _next_from_amount0_rounding_up(sqrt_p, liquidity, amount_in, True)
    return _next_from_amount1_rounding_down(sqrt_p, liquidity, amount_in, True)


def next_sqrt_price_from_output(
    sqrt_p: int, liquidity: int, amount_out: int, zero_for_one: bool
) -> int:
    """``getNextSqrtPriceFromOutput``: the price after ``amount_out`` comes out."""
    if sqrt_p <= 0 or liquidity <= 0:
        raise ValueError("getNextSqrtPriceFromOutput needs a price and liquidity > 0")
    if zero_for_one:
        return _next_from_amount1_rounding_down(sqrt_p, liquidity, amount_out, False)
    return _next_from_amount0_rounding_up(sqrt_p, liquidity, amount_out, False)


class SwapStep(NamedTuple):
    """What ``computeSwapStep`` returns."""

    sqrt_price_next: int
    amount_in: int
    amount_out: int
    fee_amount: int


def compute_swap_step(
    sqrt_current: int, sqrt_target: int, liquidity: int, amount_remaining: int, fee_pips: int
) -> SwapStep:
    """``SwapMath.computeSwapStep``: one step towards ``sqrt_target``.

    ``amount_remaining`` > 0 is an exact-input amount still to swap, < 0 an exact-output amount;
    the direction follows from the two prices (``current >= target`` is token0 in).
    """
    zero_for_one = sqrt_current >= sqrt_target
    exact_in = amount_remaining >= 0
    fee_complement = FEE_DENOMINATOR - fee_pips
    amount_in = amount_out = 0
    if exact_in:
        remaining_less_fee = amount_remaining * fee_complement // FEE_DENOMINATOR
        amount_in = (
            amount0_delta(sqrt_target, sqrt_current, liquidity, True)
            if zero_for_one
            else amount1_delta(sqrt_current, sqrt_target, liquidity, True)
        )
        if remaining_less_fee >= amount_in:
            sqrt_next = sqrt_target
        else:
            sqrt_next = next_sqrt_price_from_input(
                sqrt_current, liquidity, remaining_less_fee, zero_for_one
            )
    else:
        amount_out = (
            amount1_delta(sqrt_target, sqrt_current, liquidity, False)
            if zero_for_one
            else amount0_delta(sqrt_current, sqrt_target, liquidity, False)
        )
        if -amount_remaining >= amount_out:
            sqrt_next = sqrt_target
        else:
            sqrt_next = next_sqrt_price_from_output(
                sqrt_current, liquidity, -amount_remaining, zero_for_one
            )
    reached = sqrt_target == sqrt_next
    if zero_for_one:
        if not (reached and exact_in):
            amount_in = amount0_delta(sqrt_next, sqrt_current, liquidity, True)
        if not (reached and not exact_in):
            amount_out = amount1_delta(sqrt_next, sqrt_current, liquidity, False)
    else:
        if not (reached and exact_in):
            amount_in = amount1_delta(sqrt_current, sqrt_next, liquidity, True)
        if not (reached and not exact_in):
            amount_out = amount0_delta(sqrt_current, sqrt_next, liquidity, False)
    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and sqrt_next != sqrt_target:
        fee_amount = amount_remaining - amount_in
    else:
        fee_amount = ceil_div(amount_in * fee_pips, fee_complement)
    return SwapStep(sqrt_next, amount_in, amount_out, fee_amount)


def lp_fee(fee_amount: int, fee_protocol: int) -> int:
    """The part of a step's fee that goes to liquidity providers: the pool keeps
    ``fee_amount // fee_protocol`` for the protocol when the switch is on (4..10, 0 = off)."""
    return fee_amount - fee_amount // fee_protocol if fee_protocol else fee_amount


def fee_growth_delta(fee_amount: int, liquidity: int) -> int:
    """``FullMath.mulDiv(feeAmount, Q128, liquidity)``: fee per unit of liquidity, Q128."""
    return (fee_amount << 128) // liquidity


def position_amounts(
    sqrt_price: int,
    tick: int,
    tick_lower: int,
    tick_upper: int,
    sqrt_lower: int,
    sqrt_upper: int,
    liquidity: int,
    round_up: bool,
) -> tuple[int, int]:
    """Tokens ``liquidity`` of a range position is worth in the pool's state, as
    ``_modifyPosition`` computes them: rounded up when minting (what the provider pays),
    down when burning (what it gets back). The pool's *tick* picks the case, so a price exactly
    on a boundary is valued on the side the pool is on."""
    if tick < tick_lower:
        return amount0_delta(sqrt_lower, sqrt_upper, liquidity, round_up), 0
    if tick < tick_upper:
        return (
            amount0_delta(sqrt_price, sqrt_upper, liquidity, round_up),
            amount1_delta(sqrt_lower, sqrt_price, liquidity, round_up),
        )
    return 0, amount1_delta(sqrt_lower, sqrt_upper, liquidity, round_up)
