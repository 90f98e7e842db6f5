"""The statistics of ``clmmd evaluate``: means with 95 % confidence intervals (pure functions).

Per arm and metric, the mean with a 95 % confidence interval ``mean ± t·s/√n`` (Student's t
with n−1 degrees of freedom, exact table up to 30, a Cornish–Fisher expansion beyond); the
paired difference learned − baseline is computed per episode and gets the same interval, which
is much tighter than comparing two unpaired means because both arms share the path. Episodes
are independent given the seeds, so the t interval is the honest one.

Two corrections keep the intervals truthful:

* **Resolution.** Values are rounded to the resolution they are reported at (a cent, 0.01 %)
  before anything is computed, so float noise (an IL of ``-1e-13``) is zero, not a signal.
  When every rounded value is equal there is no spread to build an interval from: the interval
  is *degenerate* (``low == high == mean``) and never counts as excluding zero.
* **Bounds.** A metric that cannot leave ``[lower, upper]`` (time in range: 0–100 %) gets its
  interval clipped to that range, since the mean cannot lie outside it (``clipped`` says so).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: Two-sided 95 % Student t quantiles (0.975) for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    # Past the table, two terms of the Cornish–Fisher expansion around the normal quantile:
    # within 1e-4 of the exact value from 31 degrees of freedom on, closer as df grows.
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Interval:
    """A mean with its 95 % confidence interval (``low``/``high`` are None when n < 2).

    ``degenerate``: every value was equal (at the resolution used), so there is no spread;
    ``low == high == mean``. ``clipped``: an end was moved in to the metric's bounds.
    """

    mean: float
    low: float | None
    high: float | None
    n: int
    degenerate: bool = False
    clipped: bool = False

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of zero (never for a degenerate one:
        with no spread there is nothing to test)."""
        if self.degenerate or self.low is None or self.high is None:
            return False
        return self.low > 0 or self.high < 0


Bounds = tuple[float | None, float | None]


def _rounded(values: Sequence[float], resolution: float | None) -> list[float]:
    if not resolution:
        return [float(v) for v in values]
    return [round(v / resolution) * resolution for v in values]


def mean_interval(
    values: Sequence[float],
    *,
    resolution: float | None = None,
    bounds: Bounds = (None, None),
) -> Interval:
    """``mean ± t(0.975, n−1) · s / √n`` over ``values`` rounded to ``resolution``, clipped
    to ``bounds``; degenerate when the rounded values are all equal."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    xs = _rounded(values, resolution)
    mean = statistics.fmean(xs)
    if n < 2:
        return Interval(mean, None, None, n)
    if max(xs) == min(xs):
        return Interval(xs[0], xs[0], xs[0], n, degenerate=True)
    half = t_quantile_975(n - 1) * statistics.stdev(xs) / math.sqrt(n)
    low, high = mean - half, mean + half
    lower, upper = bounds
    clipped_low = max(low, lower) if lower is not None else low
    clipped_high = min(high, upper) if upper is not None else high
    clipped = (clipped_low, clipped_high) != (low, high)
    return Interval(mean, clipped_low, clipped_high, n, clipped=clipped)


def paired_difference(
    first: Sequence[float],
    second: Sequence[float],
    *,
    resolution: float | None = None,
    bounds: Bounds = (None, None),
) -> Interval:
    """The interval of ``first[i] − second[i]``: both values of a pair come from one episode.

    Each side is rounded to ``resolution`` first, so two arms equal to the cent differ by
    exactly zero."""
    a, b = _rounded(first, resolution), _rounded(second, resolution)
    return mean_interval(
        [x - y for x, y in zip(a, b, strict=True)], resolution=resolution, bounds=bounds
    )
