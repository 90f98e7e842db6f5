"""env.swap_math against the published v3-core test vectors and its own invariants."""

from __future__ import annotations

from math import isqrt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmmd.env.swap_math import (
    Q96,
    amount0_delta,
    amount1_delta,
    compute_swap_step,
    lp_fee,
    next_sqrt_price_from_input,
    next_sqrt_price_from_output,
    position_amounts,
)
from clmmd.env.uniswap_math import MAX_SQRT_RATIO, MIN_SQRT_RATIO


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """v3-core's test helper: floor(sqrt(reserve1 / reserve0) * 2**96)."""
    return isqrt(reserve1 * 2**192 // reserve0)


E18 = 10**18


@pytest.mark.parametrize(
    ("price", "target", "liquidity", "remaining", "fee", "expected"),
    [
        # Cases of v3-core's SwapMath.spec.ts: (sqrt next, amount in, amount out, fee amount).
        (
            Q96,
            encode_price_sqrt(101, 100),
            2 * E18,
            E18,
            600,
            (encode_price_sqrt(101, 100), 9975124224178055, 9925619580021728, 5988667735148),
        ),
        (
            Q96,
            encode_price_sqrt(101, 100),
            2 * E18,
            -E18,
            600,
            (encode_price_sqrt(101, 100), 9975124224178055, 9925619580021728, 5988667735148),
        ),
        (
            Q96,
            encode_price_sqrt(1000, 100),
            2 * E18,
            E18,
            600,
            (None, 999400000000000000, 666399946655997866, 600000000000000),
        ),
        (
            Q96,
            encode_price_sqrt(10000, 100),
            2 * E18,
            -E18,
            600,
            (None, 2000000000000000000, E18, 1200720432259356),
        ),
        (
            417332158212080721273783715441582,
            1452870262520218020823638996,
            159344665391607089467575320103,
            -1,
            1,
            (417332158212080721273783715441581, 1, 1, 1),
        ),
        (
            2,
            1,
            1,
            3915081100057732413702495386755767,
            1,
            (1, 39614081257132168796771975168, 0, 39614120871253040049813),
        ),
        (2413, 79887613182836312, 1985041575832132834610021537970, 10, 1872, (2413, 0, 0, 10)),
        (
            20282409603651670423947251286016,
            20282409603651670423947251286016 * 11 // 10,
            1024,
            -4,
            3000,
            (20282409603651670423947251286016 * 11 // 10, 26215, 0, 79),
        ),
        (
            20282409603651670423947251286016,
            20282409603651670423947251286016 * 9 // 10,
            1024,
            -263000,
            3000,
            (20282409603651670423947251286016 * 9 // 10, 1, 26214, 1),
        ),
    ],
)
def test_compute_swap_step_matches_v3_core_vectors(
    price: int,
    target: int,
    liquidity: int,
    remaining: int,
    fee: int,
    expected: tuple[int | None, int, int, int],
) -> None:
    step = compute_swap_step(price, target, liquidity, remaining, fee)
    next_price, amount_in, amount_out, fee_amount = expected
    assert (step.amount_in, step.amount_out, step.fee_amount) == (amount_in, amount_out, fee_amount)
    if next_price is not None:
        assert step.sqrt_price_next == next_price
    else:  # the spec checks it against getNextSqrtPriceFromInput/Output of the same amounts
        zero_for_one = price >= target
        if remaining > 0:
            expected_next = next_sqrt_price_from_input(
                price, liquidity, remaining - fee_amount, zero_for_one
            )
        else:
            expected_next = next_sqrt_price_from_output(price, liquidity, -remaining, zero_for_one)
        assert step.sqrt_price_next == expected_next


def test_amount_deltas_match_v3_core_vectors() -> None:
    # SqrtPriceMath.spec.ts: getAmount0Delta(1, 1.21, 1e18) and getAmount1Delta likewise.
    low, high = encode_price_sqrt(1, 1), encode_price_sqrt(121, 100)
    assert amount0_delta(low, high, E18, True) == 90909090909090910
    assert amount0_delta(low, high, E18, False) == 90909090909090909
    assert amount1_delta(low, high, E18, True) == 100000000000000000
    assert amount1_delta(low, high, E18, False) == 99999999999999999


def test_next_price_from_input_matches_v3_core_vectors() -> None:
    # SqrtPriceMath.spec.ts, getNextSqrtPriceFromInput: 0.1 of either token at price 1, and
    # amounts whose product with the price overflows 256 bits (the contract's other formula).
    one = encode_price_sqrt(1, 1)
    assert next_sqrt_price_from_input(one, E18, E18 // 10, False) == (87150978765690771352898345369)
    assert next_sqrt_price_from_input(one, E18, E18 // 10, True) == 72025602285694852357767227579
    assert next_sqrt_price_from_input(one, 10 * E18, 2**100, True) == 624999999995069620
    assert next_sqrt_price_from_input(one, 1, (2**256 - 1) // 2, True) == 1


@settings(max_examples=300, deadline=None)
@given(
    price=st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1),
    target=st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1),
    liquidity=st.integers(1, 2**128 - 1),
    remaining=st.integers(-(2**200), 2**200).filter(bool),
    fee=st.sampled_from([1, 100, 500, 3000, 10000, 999_999]),
)
def test_step_never_overshoots_and_pays_what_it_says(
    price: int, target: int, liquidity: int, remaining: int, fee: int
) -> None:
    try:
        step = compute_swap_step(price, target, liquidity, remaining, fee)
    except ValueError:
        return  # the contract reverts there too (output beyond reserves / price overflow)
    low, high = min(price, target), max(price, target)
    assert low <= step.sqrt_price_next <= high
    if remaining > 0:
        assert step.amount_in + step.fee_amount <= remaining
    else:
        assert step.amount_out <= -remaining
    # The input always covers the price move at the pool's rounding.
    zero_for_one = price >= target
    delta = amount0_delta if zero_for_one else amount1_delta
    assert step.amount_in >= delta(price, step.sqrt_price_next, liquidity, False)


def test_lp_fee_takes_the_protocol_share_out() -> None:
    assert lp_fee(1000, 0) == 1000
    assert lp_fee(1000, 4) == 750
    assert lp_fee(1001, 10) == 901


def test_position_amounts_follow_the_pools_tick_not_the_price() -> None:
    lower, upper = encode_price_sqrt(1, 1), encode_price_sqrt(121, 100)
    # Price exactly on the lower boundary: the tick decides which side the pool is on.
    below = position_amounts(lower, -1, 0, 1906, lower, upper, E18, False)
    inside = position_amounts(lower, 0, 0, 1906, lower, upper, E18, False)
    assert below == inside == (amount0_delta(lower, upper, E18, False), 0)
    above = position_amounts(upper, 1906, 0, 1906, lower, upper, E18, True)
    assert above == (0, amount1_delta(lower, upper, E18, True))
