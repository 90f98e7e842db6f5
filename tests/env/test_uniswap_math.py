"""Tests for env.uniswap_math against Uniswap's own published values and math properties.

Published values come from Uniswap/v3-core ``test/TickMath.spec.ts`` and its jest snapshot
``test/__snapshots__/TickMath.spec.ts.snap``, and Uniswap/v3-periphery
``test/LiquidityAmounts.spec.ts``.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, getcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.env.uniswap_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    Q96,
    amounts_for_liquidity_f,
    get_amount0_for_liquidity,
    get_amount1_for_liquidity,
    get_amounts_for_liquidity,
    get_liquidity_for_amount0,
    get_liquidity_for_amount1,
    get_liquidity_for_amounts,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    liquidity_for_amounts_f,
    price_to_tick,
    snap_range,
    snap_tick,
    tick_to_price,
    usable_tick_bounds,
)

getcontext().prec = 80

# v3-core TickMath snapshot: getSqrtRatioAtTick results.
PUBLISHED_SQRT_RATIOS: dict[int, int] = {
    MIN_TICK: 4295128739,
    MIN_TICK + 1: 4295343490,
    MAX_TICK - 1: 1461373636630004318706518188784493106690254656249,
    MAX_TICK: 1461446703485210103287273052203988822378723970342,
    0: 79228162514264337593543950336,
    -50: 79030349367926598376800521322,
    -100: 78833030112140176575862854579,
    -250: 78244023372248365697264290337,
    -500: 77272108795590369356373805297,
    -1000: 75364347830767020784054125655,
    -2500: 69919044979842180277688105136,
    -3000: 68192822843687888778582228483,
    -4000: 64867181785621769311890333195,
    -5000: 61703726247759831737814779831,
    -50000: 6504256538020985011912221507,
    -150000: 43836292794701720435367485,
    -250000: 295440463448801648376846,
    -500000: 1101692437043807371,
    -738203: 7409801140451,
    50: 79426470787362580746886972461,
    100: 79625275426524748796330556128,
    250: 80224679980005306637834519095,
    500: 81233731461783161732293370115,
    1000: 83290069058676223003182343270,
    2500: 89776708723587163891445672585,
    3000: 92049301871182272007977902845,
    4000: 96768528593268422080558758223,
    5000: 101729702841318637793976746270,
    50000: 965075977353221155028623082916,
    150000: 143194173941309278083010301478497,
    250000: 21246587762933397357449903968194344,
    500000: 5697689776495288729098254600827762987878,
    738203: 847134979253254120489401328389043031315994541,
}

# v3-core TickMath snapshot: getTickAtSqrtRatio results (ratios as printed in the test names).
PUBLISHED_TICKS: dict[int, int] = {
    4295128739: -887272,
    4295343490: -887271,
    79228162514264337593543: -276325,
    79228162514264337593543950: -138163,
    9903520314283042199192993792: -41591,
    28011385487393069959365969113: -20796,
    56022770974786139918731938227: -6932,
    79228162514264337593543950336: 0,
    112045541949572279837463876454: 6931,
    224091083899144559674927752909: 20795,
    633825300114114700748351602688: 41590,
    79228162514264337593543950336000: 138162,
    79228162514264337593543950336000000: 276324,
    1461373636630004318706518188784493106690254656249: 887271,
    1461446703485210103287273052203988822378723970341: 887271,
}


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """Uniswap's test helper: bignumber.js, 40 decimal places half-up, then floor of ×2**96."""
    places = Decimal(10) ** -40
    ratio = (Decimal(reserve1) / Decimal(reserve0)).quantize(places, ROUND_HALF_UP)
    root = ratio.sqrt().quantize(places, ROUND_HALF_UP)
    return int(root * Decimal(Q96))


def exact_sqrt_ratio(tick: int) -> Decimal:
    return (Decimal("1.0001") ** tick).sqrt() * Decimal(Q96)


@pytest.mark.parametrize(("tick", "expected"), sorted(PUBLISHED_SQRT_RATIOS.items()))
def test_sqrt_ratio_matches_published_value(tick: int, expected: int) -> None:
    assert get_sqrt_ratio_at_tick(tick) == expected


def test_extreme_ratios_are_the_library_constants() -> None:
    assert get_sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(0) == Q96 == 79228162514264337593543950336


@pytest.mark.parametrize(("ratio", "expected"), sorted(PUBLISHED_TICKS.items()))
def test_tick_matches_published_value(ratio: int, expected: int) -> None:
    assert get_tick_at_sqrt_ratio(ratio) == expected


def test_encode_price_sqrt_helper_reproduces_published_ratios() -> None:
    # Guards the helper used by the LiquidityAmounts vectors below.
    assert encode_price_sqrt(1, 2) == 56022770974786139918731938227
    assert encode_price_sqrt(8, 1) == 224091083899144559674927752909
    assert encode_price_sqrt(1, 10**12) == 79228162514264337593543


@pytest.mark.parametrize("tick", [MIN_TICK - 1, MAX_TICK + 1, 10**7, -(10**7)])
def test_sqrt_ratio_rejects_ticks_out_of_range(tick: int) -> None:
    with pytest.raises(ValueError, match=str(tick)):
        get_sqrt_ratio_at_tick(tick)


@pytest.mark.parametrize("ratio", [MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, 0, 2**160])
def test_tick_rejects_ratios_out_of_range(ratio: int) -> None:
    with pytest.raises(ValueError, match=str(ratio)):
        get_tick_at_sqrt_ratio(ratio)


@given(st.integers(MIN_TICK, MAX_TICK))
def test_sqrt_ratio_is_within_a_hundredth_bip_of_exact(tick: int) -> None:
    exact = exact_sqrt_ratio(tick)
    assert abs(Decimal(get_sqrt_ratio_at_tick(tick)) - exact) / exact < Decimal("1e-6")


@given(st.integers(MIN_TICK, MAX_TICK - 1))
def test_sqrt_ratio_strictly_increases(tick: int) -> None:
    assert get_sqrt_ratio_at_tick(tick) < get_sqrt_ratio_at_tick(tick + 1)


@given(st.integers(MIN_TICK, MAX_TICK - 1))
def test_tick_to_ratio_to_tick_round_trips(tick: int) -> None:
    assert get_tick_at_sqrt_ratio(get_sqrt_ratio_at_tick(tick)) == tick


@given(st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1))
def test_tick_is_greatest_with_ratio_not_above_input(ratio: int) -> None:
    tick = get_tick_at_sqrt_ratio(ratio)
    assert get_sqrt_ratio_at_tick(tick) <= ratio
    assert tick == MAX_TICK - 1 or get_sqrt_ratio_at_tick(tick + 1) > ratio


@given(st.integers(MIN_TICK + 1, MAX_TICK - 1))
def test_ratio_just_below_a_tick_belongs_to_the_tick_below(tick: int) -> None:
    assert get_tick_at_sqrt_ratio(get_sqrt_ratio_at_tick(tick) - 1) == tick - 1


# --- LiquidityAmounts ---------------------------------------------------------------------

RANGE_A = encode_price_sqrt(100, 110)
RANGE_B = encode_price_sqrt(110, 100)


@pytest.mark.parametrize(
    ("price", "expected"),
    [((1, 1), 2148), ((99, 110), 1048), ((99, 100), 1938), ((111, 100), 2097)],
)
def test_liquidity_for_amounts_matches_published_values(
    price: tuple[int, int], expected: int
) -> None:
    sqrt_price = encode_price_sqrt(*price)
    assert get_liquidity_for_amounts(sqrt_price, RANGE_A, RANGE_B, 100, 200) == expected


@pytest.mark.parametrize(
    ("sqrt_price", "liquidity", "expected"),
    [
        (encode_price_sqrt(1, 1), 2148, (99, 99)),
        (encode_price_sqrt(99, 110), 1048, (99, 0)),
        (encode_price_sqrt(111, 100), 2097, (0, 199)),
        (RANGE_A, 1048, (99, 0)),  # on the lower boundary: token0 only
        (RANGE_B, 2097, (0, 199)),  # on the upper boundary: token1 only
    ],
)
def test_amounts_for_liquidity_matches_published_values(
    sqrt_price: int, liquidity: int, expected: tuple[int, int]
) -> None:
    assert get_amounts_for_liquidity(sqrt_price, RANGE_A, RANGE_B, liquidity) == expected


def test_range_bounds_may_be_given_in_either_order() -> None:
    price = encode_price_sqrt(1, 1)
    assert get_liquidity_for_amounts(price, RANGE_B, RANGE_A, 100, 200) == 2148
    assert get_amounts_for_liquidity(price, RANGE_B, RANGE_A, 2148) == (99, 99)
    assert get_liquidity_for_amount0(RANGE_B, RANGE_A, 10**18) == get_liquidity_for_amount0(
        RANGE_A, RANGE_B, 10**18
    )
    assert get_amount1_for_liquidity(RANGE_B, RANGE_A, 10**18) == get_amount1_for_liquidity(
        RANGE_A, RANGE_B, 10**18
    )


def test_liquidity_overflowing_uint128_raises() -> None:
    narrow_a, narrow_b = get_sqrt_ratio_at_tick(0), get_sqrt_ratio_at_tick(1)
    with pytest.raises(OverflowError):
        get_liquidity_for_amount1(narrow_a, narrow_b, 2**200)


# Ticks and amounts bounded so that liquidity stays inside uint128 for every draw.
range_ticks = st.tuples(st.integers(-400_000, 400_000), st.integers(1, 200_000)).map(
    lambda t: (t[0], t[0] + t[1])
)
amounts = st.integers(0, 2**64)


@given(range_ticks, st.integers(-600_000, 600_000), amounts, amounts)
def test_amounts_of_liquidity_never_exceed_the_amounts(
    bounds: tuple[int, int], price_tick: int, amount0: int, amount1: int
) -> None:
    sqrt_a, sqrt_b = (get_sqrt_ratio_at_tick(t) for t in bounds)
    sqrt_price = get_sqrt_ratio_at_tick(price_tick)
    liquidity = get_liquidity_for_amounts(sqrt_price, sqrt_a, sqrt_b, amount0, amount1)
    used0, used1 = get_amounts_for_liquidity(sqrt_price, sqrt_a, sqrt_b, liquidity)
    assert used0 <= amount0
    assert used1 <= amount1


@given(range_ticks, st.integers(1, 2**100))
def test_one_sided_outside_the_range(bounds: tuple[int, int], liquidity: int) -> None:
    sqrt_a, sqrt_b = (get_sqrt_ratio_at_tick(t) for t in bounds)
    below = get_amounts_for_liquidity(sqrt_a - 1, sqrt_a, sqrt_b, liquidity)
    above = get_amounts_for_liquidity(sqrt_b + 1, sqrt_a, sqrt_b, liquidity)
    assert below == (get_amount0_for_liquidity(sqrt_a, sqrt_b, liquidity), 0)
    assert above == (0, get_amount1_for_liquidity(sqrt_a, sqrt_b, liquidity))


@given(range_ticks, st.integers(0, 2**60), st.integers(0, 2**60))
def test_liquidity_outside_the_range_uses_only_one_token(
    bounds: tuple[int, int], amount0: int, amount1: int
) -> None:
    sqrt_a, sqrt_b = (get_sqrt_ratio_at_tick(t) for t in bounds)
    below = get_liquidity_for_amounts(sqrt_a - 1, sqrt_a, sqrt_b, amount0, amount1)
    above = get_liquidity_for_amounts(sqrt_b, sqrt_a, sqrt_b, amount0, amount1)
    assert below == get_liquidity_for_amount0(sqrt_a, sqrt_b, amount0)
    assert above == get_liquidity_for_amount1(sqrt_a, sqrt_b, amount1)


def to_price(sqrt_x96: int) -> float:
    return (sqrt_x96 / Q96) ** 2


@given(range_ticks, st.integers(-500_000, 500_000), st.integers(10**15, 10**24))
def test_float_helpers_agree_with_integer_math(
    bounds: tuple[int, int], price_tick: int, amount: int
) -> None:
    sqrt_a, sqrt_b = (get_sqrt_ratio_at_tick(t) for t in bounds)
    sqrt_price = get_sqrt_ratio_at_tick(price_tick)
    liquidity = get_liquidity_for_amounts(sqrt_price, sqrt_a, sqrt_b, amount, amount)
    price, pa, pb = to_price(sqrt_price), to_price(sqrt_a), to_price(sqrt_b)
    liquidity_f = liquidity_for_amounts_f(price, pa, pb, float(amount), float(amount))
    assert liquidity_f == pytest.approx(liquidity, rel=1e-9, abs=2.0)
    x, y = amounts_for_liquidity_f(price, pa, pb, float(liquidity))
    x_int, y_int = get_amounts_for_liquidity(sqrt_price, sqrt_a, sqrt_b, liquidity)
    assert x == pytest.approx(x_int, rel=1e-9, abs=2.0)
    assert y == pytest.approx(y_int, rel=1e-9, abs=2.0)


@given(st.integers(-800_000, 800_000))
def test_tick_to_price_matches_exact_ratio(tick: int) -> None:
    assert tick_to_price(tick) == pytest.approx(float(Decimal("1.0001") ** tick), rel=1e-12)


@given(st.integers(-800_000, 800_000), st.floats(0.0, 0.999999))
def test_price_to_tick_floors(tick: int, fraction: float) -> None:
    price = tick_to_price(tick) * 1.0001**fraction
    found = price_to_tick(price)
    assert tick_to_price(found) <= price < tick_to_price(found + 1)
    assert found in (tick - 1, tick)  # tick - 1 only when float rounding put price just below
    assert price_to_tick(tick_to_price(tick)) == tick


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_price_to_tick_rejects_bad_prices(price: float) -> None:
    with pytest.raises(ValueError, match="price"):
        price_to_tick(price)


# --- tick spacing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tick", "spacing", "mode", "expected"),
    [
        (15, 10, "floor", 10),
        (15, 10, "ceil", 20),
        (-15, 10, "floor", -20),
        (-15, 10, "ceil", -10),
        (-14, 10, "nearest", -10),
        (16, 10, "nearest", 20),
        (60, 60, "floor", 60),
        (60, 60, "ceil", 60),
        (MAX_TICK, 60, "ceil", 887220),
        (MIN_TICK, 200, "floor", -887200),
    ],
)
def test_snap_tick(tick: int, spacing: int, mode: str, expected: int) -> None:
    assert snap_tick(tick, spacing, mode) == expected  # type: ignore[arg-type]


def test_usable_bounds_are_spacing_multiples_inside_the_tick_range() -> None:
    for spacing in (1, 10, 60, 200):
        low, high = usable_tick_bounds(spacing)
        assert low % spacing == 0 and high % spacing == 0
        assert low >= MIN_TICK and high <= MAX_TICK
        assert low - spacing < MIN_TICK and high + spacing > MAX_TICK


@given(st.integers(-900_000, 900_000), st.integers(0, 50_000), st.sampled_from([1, 10, 60, 200]))
def test_snap_range_widens_to_spacing_with_lo_below_hi(
    lower: int, width: int, spacing: int
) -> None:
    upper = lower + width
    lo, hi = snap_range(lower, upper, spacing)
    low_bound, high_bound = usable_tick_bounds(spacing)
    assert lo % spacing == 0 and hi % spacing == 0
    assert low_bound <= lo < hi <= high_bound
    if low_bound <= lower and upper <= high_bound and lower < upper:
        assert lo <= lower and hi >= upper
        assert lo > lower - spacing and hi < upper + spacing


def test_snap_range_rejects_inverted_range() -> None:
    with pytest.raises(ValueError, match="100"):
        snap_range(100, 50, 10)
