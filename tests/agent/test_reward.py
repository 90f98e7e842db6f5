"""Reward: components in percent of size that sum to the total, each moving the right way."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.agent.reward import RewardWeights, compute_reward
from clmmd.artifacts.models import Reward

BASE: dict[str, float] = {
    "pnl_usd": 12.0,
    "fees_usd": 8.0,
    "gas_cost_usd": 3.0,
    "time_in_range_pct": 75.0,
    "size_usd_applied": 1000.0,
}


def reward(**changes: Any) -> Reward:
    return compute_reward(**{**BASE, **changes})


def component_sum(r: Reward) -> float:
    c = r.components
    return c.pnl + c.fees + c.gas_penalty + c.range_penalty


money = st.floats(min_value=-1e5, max_value=1e5, allow_nan=False)
weights = st.builds(
    RewardWeights,
    pnl=st.floats(0, 5),
    fees=st.floats(0, 5),
    gas=st.floats(0, 5),
    range=st.floats(0, 5),
)


@given(
    pnl=money,
    fees=st.floats(0, 1e4),
    gas=st.floats(0, 1e3),
    tir=st.floats(0, 100),
    size=st.floats(1, 1e6),
    w=weights,
)
def test_components_sum_to_the_total(
    pnl: float, fees: float, gas: float, tir: float, size: float, w: RewardWeights
) -> None:
    r = compute_reward(
        pnl_usd=pnl,
        fees_usd=fees,
        gas_cost_usd=gas,
        time_in_range_pct=tir,
        size_usd_applied=size,
        weights=w,
    )
    assert math.isclose(r.total, component_sum(r), rel_tol=1e-9, abs_tol=1e-8)
    assert r.weights == w.as_dict()
    assert r.components.gas_penalty <= 0
    assert r.components.range_penalty <= 0


def test_with_unit_weights_the_money_components_add_up_to_pnl_in_percent() -> None:
    """pnl (market move) + fees − gas is the position's whole PnL, in percent of size."""
    r = compute_reward(**{**BASE, "time_in_range_pct": 100.0}, weights=RewardWeights(range=1.0))
    assert r.components.range_penalty == 0
    assert r.total == pytest.approx(100 * BASE["pnl_usd"] / BASE["size_usd_applied"])
    market = BASE["pnl_usd"] - BASE["fees_usd"] + BASE["gas_cost_usd"]
    assert r.components.pnl == pytest.approx(100 * market / BASE["size_usd_applied"])


def test_more_pnl_raises_the_pnl_component_and_the_total() -> None:
    lo, hi = reward(pnl_usd=5.0), reward(pnl_usd=6.0)
    assert hi.components.pnl > lo.components.pnl
    assert hi.total > lo.total
    assert hi.components.fees == lo.components.fees


def test_more_fees_raise_the_fees_component() -> None:
    lo, hi = reward(fees_usd=1.0), reward(fees_usd=2.0)
    assert hi.components.fees > lo.components.fees
    # At the same total PnL, weighting fees above the market move rewards earning them.
    fee_lover = RewardWeights(fees=2.0)
    assert (
        compute_reward(**{**BASE, "fees_usd": 2.0}, weights=fee_lover).total
        > compute_reward(**{**BASE, "fees_usd": 1.0}, weights=fee_lover).total
    )


def test_more_gas_is_a_bigger_penalty() -> None:
    lo, hi = reward(gas_cost_usd=1.0), reward(gas_cost_usd=4.0)
    assert hi.components.gas_penalty < lo.components.gas_penalty < 0
    assert reward(gas_cost_usd=0.0).components.gas_penalty == 0


def test_time_out_of_range_is_penalised() -> None:
    full, half, none = (reward(time_in_range_pct=p) for p in (100.0, 50.0, 0.0))
    assert full.components.range_penalty == 0
    assert none.components.range_penalty < half.components.range_penalty < 0
    assert none.components.range_penalty == pytest.approx(-RewardWeights().range)
    assert full.total > half.total > none.total


def test_reward_is_in_percent_of_size_so_scale_does_not_matter() -> None:
    small = reward()
    big = reward(**{k: v * 10 for k, v in BASE.items() if k != "time_in_range_pct"})
    assert big.components == small.components


def test_zero_weight_switches_a_component_off() -> None:
    r = compute_reward(**BASE, weights=RewardWeights(pnl=0, fees=0, gas=0, range=0))
    assert component_sum(r) == 0 == r.total


@pytest.mark.parametrize("size", [0.0, -100.0])
def test_size_must_be_positive(size: float) -> None:
    with pytest.raises(ValueError, match="size_usd_applied"):
        reward(size_usd_applied=size)


@pytest.mark.parametrize("field", sorted(BASE))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_inputs_raise_instead_of_making_a_nan_reward(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        reward(**{field: value})
