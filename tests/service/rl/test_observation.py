"""The observation encoder: bounds, clipping, regime keys, no position vs a position."""

from __future__ import annotations

import numpy as np
import pytest

from clmmd.agent.regime import Regime
from clmmd.service.rl import observation as obs


def _static(**overrides: float) -> np.ndarray:
    values = {
        "volatility_daily": 0.03,
        "volume_usd_per_day": 1e8,
        "active_liquidity_usd": 5e7,
        "gas_cost_usd": 15.0,
        "size_usd_applied": 10_000.0,
        "fee_pips": 500,
        "risk_scalar": 0.85,
        **overrides,
    }
    return obs.static_features(regime=Regime("low", "mid", "clean"), **values)


def test_static_fields_and_regime_one_hot() -> None:
    static = _static()
    named = dict(zip(obs.NAMES, static, strict=False))
    assert named["volume_to_liquidity"] == 2.0 and named["gas_cost_pct"] == pytest.approx(0.15)
    assert named["fee_tier_pct"] == 0.05
    assert [named[n] for n in ("gas_low", "gas_normal", "gas_high")] == [1, 0, 0]
    assert [named[n] for n in ("vol_low", "vol_mid", "vol_high")] == [0, 1, 0]
    assert [named[n] for n in ("flow_clean", "flow_toxic")] == [1, 0]


def test_regime_keys_parse_and_unknown_parts_stay_unknown() -> None:
    assert obs.regime_from_key("gas=high|vol=low|flow=toxic") == Regime("high", "low", "toxic")
    assert obs.regime_from_key(None) == Regime("unknown", "unknown", "unknown")
    assert obs.regime_from_key("gas=low|garbage") == Regime("low", "unknown", "unknown")


def test_position_fields_and_clipping() -> None:
    static = obs.clip_static(_static(volatility_daily=7.0))  # clipped to 1
    none = obs.encode(
        static,
        price_usd=3000.0,
        start_price_usd=3000.0,
        range_usd=None,
        time_in_range=0.0,
        fees_pct=0.0,
        progress=0.0,
    )
    assert none[0] == 1.0
    assert none[obs.NAMES.index("has_position")] == 0.0
    assert none[obs.NAMES.index("price_in_range")] == 0.5
    inside = obs.encode(
        static,
        price_usd=3000.0,
        start_price_usd=2700.0,
        range_usd=(2800.0, 3200.0),
        time_in_range=0.75,
        fees_pct=0.2,
        progress=0.5,
    )
    named = dict(zip(obs.NAMES, inside.tolist(), strict=True))
    assert named["has_position"] == 1.0
    assert 0.5 < named["price_in_range"] < 0.53  # log scale: just above the middle
    assert named["range_half_width_pct"] == pytest.approx(100 * ((3200 / 2800) ** 0.5 - 1), 1e-5)
    assert named["price_change_pct"] == pytest.approx(100 / 9, 1e-5)
    far_out = obs.encode(
        static,
        price_usd=1e6,
        start_price_usd=1.0,
        range_usd=(2800.0, 3200.0),
        time_in_range=0.0,
        fees_pct=1e9,
        progress=1.0,
    )
    assert far_out[obs.NAMES.index("price_in_range")] == 10.0
    assert far_out[obs.NAMES.index("price_change_pct")] == 1000.0
    assert far_out[obs.NAMES.index("fees_pct")] == 100.0
    assert np.all(far_out >= obs.LOW) and np.all(far_out <= obs.HIGH)
