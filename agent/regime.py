"""Market regime: a pure function from what the intel snapshot says to a ``regime_key``.

The key is ``gas=<low|normal|high|unknown>|vol=<low|mid|high|unknown>|flow=<clean|toxic|unknown>``.
A missing or unusable input becomes ``unknown`` for its component; it never raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Daily volatility bucket edges: below 2 % low, below 5 % mid, otherwise high.
VOL_EDGES = (0.02, 0.05)
#: Share of toxic (informed) flow above which the pool's flow counts as toxic.
TOXIC_EDGE = 0.25
UNKNOWN = "unknown"


@dataclass(frozen=True)
class MarketView:
    """The inputs the agent reads, already extracted from the intel snapshot."""

    price_usd: float | None = None
    gas_regime: str | None = None
    volatility_daily: float | None = None
    toxic_share: float | None = None
    fresh_pct: float = 0.0


@dataclass(frozen=True)
class Regime:
    gas: str
    vol: str
    flow: str

    @property
    def key(self) -> str:
        return f"gas={self.gas}|vol={self.vol}|flow={self.flow}"

    @property
    def is_unknown(self) -> bool:
        return UNKNOWN in (self.gas, self.vol, self.flow)


def _finite(value: float | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def classify(view: MarketView) -> Regime:
    """Bucket each input; unusable inputs become ``unknown``."""
    raw_gas = view.gas_regime
    # isinstance first: ``in`` compares with ``==``, which raises for array-like values.
    gas = raw_gas if isinstance(raw_gas, str) and raw_gas in ("low", "normal", "high") else UNKNOWN
    vol_value = _finite(view.volatility_daily)
    if vol_value is None:
        vol = UNKNOWN
    elif vol_value < VOL_EDGES[0]:
        vol = "low"
    elif vol_value < VOL_EDGES[1]:
        vol = "mid"
    else:
        vol = "high"
    toxic = _finite(view.toxic_share)
    flow = UNKNOWN if toxic is None else ("toxic" if toxic >= TOXIC_EDGE else "clean")
    return Regime(gas=gas, vol=vol, flow=flow)
