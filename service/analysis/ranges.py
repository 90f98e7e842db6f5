"""A position's range as a person reads it: prices in USD and per cent around the price, beside
the ticks the protocol uses (pure formatting, shared by ``clmmd report`` and ``runs show``)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PriceRange:
    """The USD band of a range and the price it was set around (all USD, low < high)."""

    low_usd: float
    high_usd: float
    price_usd: float

    @property
    def low_pct(self) -> float:
        """Where the lower bound sits relative to the price, in per cent (negative)."""
        return 100.0 * (self.low_usd / self.price_usd - 1.0)

    @property
    def high_pct(self) -> float:
        """Where the upper bound sits relative to the price, in per cent (positive)."""
        return 100.0 * (self.high_usd / self.price_usd - 1.0)

    def percent_text(self) -> str:
        """``±5.0 %`` when both sides round alike, else ``-4.8/+5.2 %``."""
        low, high = f"{-self.low_pct:.1f}", f"{self.high_pct:.1f}"
        return f"±{high} %" if low == high else f"{self.low_pct:+.1f}/{self.high_pct:+.1f} %"

    def prices_text(self) -> str:
        """``2,850.12–3,150.40`` (USD, as many decimals as the price needs)."""
        digits = _digits(self.price_usd)
        return f"{self.low_usd:,.{digits}f}–{self.high_usd:,.{digits}f}"


def _digits(price: float) -> int:
    """Decimals that keep about five significant figures (2 for prices from 1,000 up)."""
    if price >= 1000:
        return 2
    return min(8, max(2, 4 - math.floor(math.log10(price))))


def price_range(
    low_usd: float | None, high_usd: float | None, price_usd: float | None
) -> PriceRange | None:
    """A :class:`PriceRange`, or ``None`` when a bound or the price is missing or unusable."""
    values = (low_usd, high_usd, price_usd)
    if any(v is None or not math.isfinite(v) or v <= 0 for v in values):
        return None
    low, high, price = (float(v) for v in values if v is not None)
    return PriceRange(min(low, high), max(low, high), price)
