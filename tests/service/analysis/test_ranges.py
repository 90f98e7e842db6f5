from __future__ import annotations

import math

import pytest

from clmmd.service.analysis.ranges import price_range


def test_symmetric_range_reads_as_plus_minus() -> None:
    band = price_range(2850.0, 3150.0, 3000.0)
    assert band is not None
    assert band.percent_text() == "±5.0 %"
    assert band.prices_text() == "2,850.00–3,150.00"


def test_asymmetric_range_shows_both_sides() -> None:
    band = price_range(2969.066434, 3124.408614, 3044.9834)
    assert band is not None
    assert band.percent_text() == "-2.5/+2.6 %"
    assert band.low_pct == pytest.approx(-2.4932, abs=1e-3)


def test_bounds_in_either_order_and_small_prices_keep_their_digits() -> None:
    band = price_range(0.000412, 0.000398, 0.000405)
    assert band is not None
    assert band.prices_text() == "0.00039800–0.00041200"
    assert band.low_usd < band.high_usd


@pytest.mark.parametrize(
    "values",
    [(None, 1.0, 1.0), (1.0, None, 1.0), (1.0, 2.0, None), (0.0, 2.0, 1.0), (1.0, math.inf, 1.0)],
)
def test_missing_or_unusable_values_give_no_range(values: tuple[float | None, ...]) -> None:
    assert price_range(*values) is None
