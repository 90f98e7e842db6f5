"""The observation of the LP environments: the agent's market inputs as a flat ``float32`` Box.

Pure (numpy only, no Gymnasium), so the Minari export encodes artifacts with the very same
function the environment uses. Every field, in order (:data:`FIELDS` holds the bounds; values
are clipped into them):

======================  ===========  ==========================================================
field                   range        meaning
======================  ===========  ==========================================================
volatility_daily        0 … 1        daily volatility of the episode's market inputs (fraction)
volume_to_liquidity     0 … 100      daily volume ÷ active in-range liquidity (turnover per day)
gas_cost_pct            0 … 100      one open + close (mint, burn, collect) at the episode's gas
                                     and ETH price, in % of the deployed size
fee_tier_pct            0 … 1        the pool's fee in percent (0.05 for the 0.05 % tier)
gas_low/normal/high     0 or 1       the regime's gas component, one-hot (all 0: unknown)
vol_low/mid/high        0 or 1       the regime's volatility component, one-hot
flow_clean/toxic        0 or 1       the regime's flow component, one-hot
risk_scalar             0 … 1        the share of the proposed size the regime lets deploy
has_position            0 or 1       a range is open
price_in_range          −10 … 10     (ln p − ln low) ÷ (ln high − ln low): 0 at the lower bound,
                                     1 at the upper, outside [0, 1) out of range; 0.5 when no
                                     range is open
range_half_width_pct    0 … 100      half the open range's width, 100 × (√(high/low) − 1); 0
                                     when none is open
price_change_pct        −100 … 1000  price now against the episode's start, in percent
time_in_range           0 … 1        share of the elapsed steps spent in range (0 at the start)
fees_pct                0 … 100      fees earned so far, in % of the deployed size
progress                0 … 1        elapsed share of the horizon
======================  ===========  ==========================================================

The first twelve fields (up to ``risk_scalar``) are fixed for an episode: what the intel
snapshot says when it starts. The rest describe the position now and what it did so far;
none of them reads a price after "now".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from clmmd.agent.regime import UNKNOWN, Regime


@dataclass(frozen=True)
class ObservationField:
    name: str
    low: float
    high: float


FIELDS: tuple[ObservationField, ...] = (
    ObservationField("volatility_daily", 0.0, 1.0),
    ObservationField("volume_to_liquidity", 0.0, 100.0),
    ObservationField("gas_cost_pct", 0.0, 100.0),
    ObservationField("fee_tier_pct", 0.0, 1.0),
    ObservationField("gas_low", 0.0, 1.0),
    ObservationField("gas_normal", 0.0, 1.0),
    ObservationField("gas_high", 0.0, 1.0),
    ObservationField("vol_low", 0.0, 1.0),
    ObservationField("vol_mid", 0.0, 1.0),
    ObservationField("vol_high", 0.0, 1.0),
    ObservationField("flow_clean", 0.0, 1.0),
    ObservationField("flow_toxic", 0.0, 1.0),
    ObservationField("risk_scalar", 0.0, 1.0),
    ObservationField("has_position", 0.0, 1.0),
    ObservationField("price_in_range", -10.0, 10.0),
    ObservationField("range_half_width_pct", 0.0, 100.0),
    ObservationField("price_change_pct", -100.0, 1000.0),
    ObservationField("time_in_range", 0.0, 1.0),
    ObservationField("fees_pct", 0.0, 100.0),
    ObservationField("progress", 0.0, 1.0),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
STATIC_SIZE = NAMES.index("has_position")
LOW: NDArray[np.float32] = np.array([f.low for f in FIELDS], dtype=np.float32)
HIGH: NDArray[np.float32] = np.array([f.high for f in FIELDS], dtype=np.float32)

_COMPONENTS: dict[str, tuple[str, ...]] = {
    "gas": ("low", "normal", "high"),
    "vol": ("low", "mid", "high"),
    "flow": ("clean", "toxic"),
}


def regime_from_key(key: str | None) -> Regime:
    """Parse ``gas=…|vol=…|flow=…`` (as metadata.json records it); bad parts are unknown."""
    parts = dict(p.split("=", 1) for p in (key or "").split("|") if "=" in p)
    return Regime(
        gas=parts.get("gas", UNKNOWN),
        vol=parts.get("vol", UNKNOWN),
        flow=parts.get("flow", UNKNOWN),
    )


def _finite(value: float | None, fallback: float = 0.0) -> float:
    return float(value) if value is not None and math.isfinite(value) else fallback


def static_features(
    *,
    volatility_daily: float,
    volume_usd_per_day: float,
    active_liquidity_usd: float,
    gas_cost_usd: float,
    size_usd_applied: float,
    fee_pips: int,
    regime: Regime,
    risk_scalar: float,
) -> NDArray[np.float64]:
    """The fields fixed for an episode (the first :data:`STATIC_SIZE`), unclipped."""
    turnover = volume_usd_per_day / active_liquidity_usd if active_liquidity_usd > 0 else 0.0
    one_hot = [
        1.0 if getattr(regime, component) == value else 0.0
        for component, values in _COMPONENTS.items()
        for value in values
    ]
    return np.array(
        [
            _finite(volatility_daily),
            _finite(turnover),
            _finite(100.0 * gas_cost_usd / size_usd_applied),
            fee_pips / 10_000.0,
            *one_hot,
            _finite(risk_scalar),
        ],
        dtype=np.float64,
    )


def encode(
    static: NDArray[np.float32],
    *,
    price_usd: float,
    start_price_usd: float,
    range_usd: tuple[float, float] | None,
    time_in_range: float,
    fees_pct: float,
    progress: float,
) -> NDArray[np.float32]:
    """The whole observation: ``static`` (already clipped, :func:`clip_static`) and the
    position now, clipped into the bounds."""
    if range_usd is None:
        has_position, in_range, half_width = 0.0, 0.5, 0.0
    else:
        low, high = range_usd
        log_low = math.log(low)
        has_position = 1.0
        in_range = (math.log(price_usd) - log_low) / (math.log(high) - log_low)
        half_width = 100.0 * (math.sqrt(high / low) - 1.0)
    values = (
        has_position,
        in_range,
        half_width,
        100.0 * (price_usd / start_price_usd - 1.0),
        time_in_range,
        fees_pct,
        progress,
    )
    out = np.empty(len(FIELDS), dtype=np.float32)
    out[:STATIC_SIZE] = static
    # Python min/max per value: cheaper than np.clip on a 20-value array, step after step.
    out[STATIC_SIZE:] = [
        min(high, max(low, v))
        for v, low, high in zip(values, _DYNAMIC_LOW, _DYNAMIC_HIGH, strict=True)
    ]
    return out


def clip_static(static: NDArray[np.float64]) -> NDArray[np.float32]:
    """The fixed fields as ``float32``, clipped into their bounds (once per episode)."""
    clipped: NDArray[np.float32] = np.clip(
        static.astype(np.float32), LOW[:STATIC_SIZE], HIGH[:STATIC_SIZE]
    )
    return clipped


_DYNAMIC_LOW = [f.low for f in FIELDS[STATIC_SIZE:]]
_DYNAMIC_HIGH = [f.high for f in FIELDS[STATIC_SIZE:]]
