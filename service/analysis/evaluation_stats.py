"""The statistics of ``clmmd evaluate``: means with 95 % confidence intervals (pure functions).

Per arm and metric, the mean with a 95 % confidence interval ``mean ± t·s/√n`` (Student's t
with n−1 degrees of freedom, exact table up to 30, a Cornish–Fisher expansion beyond); the
paired difference learned − baseline is computed per episode and gets the same interval, which
is much tighter than comparing two unpaired means because both arms share the path. Episodes
are independent given the seeds, so the t interval is the honest one.
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
    """A mean with its 95 % confidence interval (``low``/``high`` are None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def mean_interval(values: Sequence[float]) -> Interval:
    """``mean ± t(0.975, n−1) · s / √n``."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n)
    half = t_quantile_975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(first: Sequence[float], second: Sequence[float]) -> Interval:
    """The interval of ``first[i] − second[i]``: both values of a pair come from one episode."""
    return mean_interval([a - b for a, b in zip(first, second, strict=True)])
