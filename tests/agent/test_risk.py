"""Risk scalar: in (0, 1], lower in riskier regimes, and a configured override wins."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.agent.regime import UNKNOWN, Regime
from clmmd.agent.risk import DEFAULT_PROFILE, FLOOR, risk_scalar

GAS = ["low", "normal", "high", UNKNOWN]
VOL = ["low", "mid", "high", UNKNOWN]
FLOW = ["clean", "toxic", UNKNOWN]
ALL_REGIMES = [Regime(g, v, f) for g, v, f in itertools.product(GAS, VOL, FLOW)]
CALM = Regime("low", "low", "clean")


@pytest.mark.parametrize("regime", ALL_REGIMES, ids=lambda r: r.key)
def test_scalar_is_in_zero_one_for_every_regime(regime: Regime) -> None:
    assert 0 < risk_scalar(regime) <= 1


def test_calm_regime_deploys_the_full_size() -> None:
    assert risk_scalar(CALM) == 1.0


def test_scalar_is_the_product_of_the_component_haircuts() -> None:
    regime = Regime("high", "high", "toxic")
    expected = (
        DEFAULT_PROFILE["gas=high"] * DEFAULT_PROFILE["vol=high"] * DEFAULT_PROFILE["flow=toxic"]
    )
    assert risk_scalar(regime) == pytest.approx(max(FLOOR, expected))


@pytest.mark.parametrize(
    ("safer", "riskier"),
    [
        (Regime("normal", "low", "clean"), Regime("high", "low", "clean")),
        (Regime("low", "low", "clean"), Regime(UNKNOWN, "low", "clean")),
        (Regime("low", "low", "clean"), Regime("low", "mid", "clean")),
        (Regime("low", "mid", "clean"), Regime("low", "high", "clean")),
        (Regime("low", "low", "clean"), Regime("low", UNKNOWN, "clean")),
        (Regime("low", "low", "clean"), Regime("low", "low", "toxic")),
        (Regime("low", "low", "clean"), Regime("low", "low", UNKNOWN)),
    ],
)
def test_riskier_components_lower_the_scalar(safer: Regime, riskier: Regime) -> None:
    assert risk_scalar(riskier) < risk_scalar(safer)


def test_floor_and_ceiling_of_a_custom_profile() -> None:
    harsh = {"gas=low": 0.01, "vol=low": 0.01}
    assert risk_scalar(CALM, harsh) == FLOOR
    generous = {"gas=low": 5.0}
    assert risk_scalar(CALM, generous) == 1.0
    assert risk_scalar(CALM, {}) == 1.0  # an empty profile applies no haircut


@pytest.mark.parametrize("override", [0.05, 0.5, 1.0])
@pytest.mark.parametrize(
    "regime", [CALM, Regime("high", "high", "toxic"), Regime(UNKNOWN, UNKNOWN, UNKNOWN)]
)
def test_override_wins_over_the_regime(override: float, regime: Regime) -> None:
    assert risk_scalar(regime, override=override) == override
    assert risk_scalar(regime, {"gas=high": 0.2}, override=override) == override


@pytest.mark.parametrize("override", [0.0, -0.5, 1.0001, 2.0, math.nan, math.inf, -math.inf])
def test_bad_override_raises(override: float) -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        risk_scalar(CALM, override=override)


@given(
    st.dictionaries(
        st.sampled_from(
            [f"{part}={v}" for part, vs in (("gas", GAS), ("vol", VOL), ("flow", FLOW)) for v in vs]
        ),
        st.floats(min_value=0, max_value=10),
    ),
    st.sampled_from(ALL_REGIMES),
)
def test_any_finite_profile_keeps_the_scalar_in_floor_one(
    profile: dict[str, float], regime: Regime
) -> None:
    assert FLOOR <= risk_scalar(regime, profile) <= 1.0
