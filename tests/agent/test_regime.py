"""Market regime: every input bucketed, anything unusable becomes ``unknown``, never raises."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.agent.regime import TOXIC_EDGE, UNKNOWN, VOL_EDGES, MarketView, Regime, classify

KEY_RE = re.compile(
    r"^gas=(low|normal|high|unknown)\|vol=(low|mid|high|unknown)\|flow=(clean|toxic|unknown)$"
)


def view(**kw: Any) -> MarketView:
    """A MarketView with deliberately untyped inputs (the snapshot may hold anything)."""
    return MarketView(**kw)


def test_complete_view() -> None:
    regime = classify(view(gas_regime="high", volatility_daily=0.03, toxic_share=0.1))
    assert regime == Regime(gas="high", vol="mid", flow="clean")
    assert regime.key == "gas=high|vol=mid|flow=clean"
    assert not regime.is_unknown


def test_empty_view_is_all_unknown() -> None:
    regime = classify(MarketView())
    assert regime == Regime(UNKNOWN, UNKNOWN, UNKNOWN)
    assert regime.is_unknown
    assert regime.key == "gas=unknown|vol=unknown|flow=unknown"


@pytest.mark.parametrize(
    ("kw", "unknown_part"),
    [
        ({"volatility_daily": 0.01, "toxic_share": 0.5}, "gas"),
        ({"gas_regime": "low", "toxic_share": 0.5}, "vol"),
        ({"gas_regime": "low", "volatility_daily": 0.01}, "flow"),
    ],
)
def test_partial_view_marks_only_the_missing_component(
    kw: dict[str, Any], unknown_part: str
) -> None:
    regime = classify(view(**kw))
    parts = {"gas": regime.gas, "vol": regime.vol, "flow": regime.flow}
    assert parts.pop(unknown_part) == UNKNOWN
    assert UNKNOWN not in parts.values()
    assert regime.is_unknown


@pytest.mark.parametrize(
    ("vol", "bucket"),
    [
        (0.0, "low"),
        (VOL_EDGES[0] - 1e-9, "low"),
        (VOL_EDGES[0], "mid"),
        (VOL_EDGES[1] - 1e-9, "mid"),
        (VOL_EDGES[1], "high"),
        (3.0, "high"),
    ],
)
def test_volatility_buckets_at_their_edges(vol: float, bucket: str) -> None:
    assert classify(view(volatility_daily=vol)).vol == bucket


@pytest.mark.parametrize(
    ("share", "flow"), [(0.0, "clean"), (TOXIC_EDGE - 1e-9, "clean"), (TOXIC_EDGE, "toxic")]
)
def test_flow_buckets_at_the_edge(share: float, flow: str) -> None:
    assert classify(view(toxic_share=share)).flow == flow


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        -0.01,
        "abc",
        "",
        True,
        False,
        10**400,
        [0.03],
        {"v": 0.03},
        object(),
        complex(0.03, 0),
    ],
)
def test_unusable_numbers_become_unknown(bad: Any) -> None:
    regime = classify(view(gas_regime="normal", volatility_daily=bad, toxic_share=bad))
    assert (regime.gas, regime.vol, regime.flow) == ("normal", UNKNOWN, UNKNOWN)


@pytest.mark.parametrize(
    "bad", ["HIGH", "medium", "", None, 3, math.nan, ["low"], np.array(["low", "high"])]
)
def test_unusable_gas_regimes_become_unknown(bad: Any) -> None:
    assert classify(view(gas_regime=bad, volatility_daily=0.01)).gas == UNKNOWN


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.floats(), max_size=3),
    st.sampled_from(["low", "normal", "high", "0.03", "nan", "-1", "1e999"]),
)


@given(gas=anything, vol=anything, toxic=anything)
def test_classify_never_raises_and_always_gives_a_well_formed_key(
    gas: Any, vol: Any, toxic: Any
) -> None:
    regime = classify(view(gas_regime=gas, volatility_daily=vol, toxic_share=toxic))
    assert KEY_RE.match(regime.key)
    assert regime.is_unknown == (UNKNOWN in regime.key)


@given(
    vol=st.floats(min_value=0, max_value=10),
    toxic=st.floats(min_value=0, max_value=1),
    gas=st.sampled_from(["low", "normal", "high"]),
)
def test_usable_inputs_are_never_unknown(vol: float, toxic: float, gas: str) -> None:
    assert not classify(
        MarketView(gas_regime=gas, volatility_daily=vol, toxic_share=toxic)
    ).is_unknown
