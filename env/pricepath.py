"""Deterministic market paths for the mock simulator: price and traded volume per step.

Both come from the episode seed, so the same request always sees the same market. The price is
geometric Brownian motion with zero drift (``mu = 0``: log returns have mean ``-σ²dt/2``, so the
expected price stays at the start price) and daily volatility ``σ``. Volume per step is the daily
volume spread evenly over the day times a mean-one log-normal noise factor, drawn from a stream
independent of the price stream.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

MINUTES_PER_DAY = 1440.0

#: The distance ``PCG64.jumped()`` advances a stream: ``(sqrt(5) - 1) / 2 * 2**128`` (numpy).
_PCG64_JUMP = 0x9E3779B97F4A7C15F39CC0605CEDC835

#: Log-normal sigma of the per-step volume noise (about ±30 % step to step).
DEFAULT_VOLUME_NOISE = 0.3


def step_count(horizon_hours: float, step_minutes: float = 5.0) -> int:
    """Number of whole steps covering ``horizon_hours`` (rounded up, at least one)."""
    if not (math.isfinite(horizon_hours) and horizon_hours > 0):
        raise ValueError(f"horizon_hours must be finite and > 0, got {horizon_hours!r}")
    if not (math.isfinite(step_minutes) and step_minutes > 0):
        raise ValueError(f"step_minutes must be finite and > 0, got {step_minutes!r}")
    return max(1, math.ceil(horizon_hours * 60.0 / step_minutes - 1e-9))


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def price_path(
    seed: int,
    start_price: float,
    volatility_daily: float,
    horizon_hours: float,
    step_minutes: float = 5.0,
) -> NDArray[np.float64]:
    """Prices at the start and at the end of every step: ``step_count + 1`` values.

    ``price[0] == start_price``; zero volatility gives a flat path.
    """
    _check_seed(seed)
    if not (math.isfinite(start_price) and start_price > 0):
        raise ValueError(f"start_price must be finite and > 0, got {start_price!r}")
    if not (math.isfinite(volatility_daily) and volatility_daily >= 0):
        raise ValueError(f"volatility_daily must be finite and >= 0, got {volatility_daily!r}")
    steps = step_count(horizon_hours, step_minutes)
    dt_days = step_minutes / MINUTES_PER_DAY
    rng = np.random.Generator(np.random.PCG64(seed))
    shocks = rng.standard_normal(steps)
    sigma_step = volatility_daily * math.sqrt(dt_days)
    log_returns = sigma_step * shocks - 0.5 * sigma_step**2
    log_path = np.concatenate(([0.0], np.cumsum(log_returns)))
    prices: NDArray[np.float64] = start_price * np.exp(log_path)
    return prices


def volume_series(
    seed: int,
    volume_usd_per_day: float,
    steps: int,
    step_minutes: float = 5.0,
    noise: float = DEFAULT_VOLUME_NOISE,
) -> NDArray[np.float64]:
    """USD volume traded in each of ``steps`` steps; expected total = daily rate × duration."""
    _check_seed(seed)
    if not (math.isfinite(volume_usd_per_day) and volume_usd_per_day >= 0):
        raise ValueError(f"volume_usd_per_day must be finite and >= 0, got {volume_usd_per_day!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}")
    per_step = volume_usd_per_day * step_minutes / MINUTES_PER_DAY
    # A jumped PCG64 is a stream independent of the price stream drawn from the same seed.
    # ``PCG64(seed).jumped()`` is this advance on a copy, whose construction first draws OS
    # entropy it then discards (2.4x the cost of the advance alone); the states are equal.
    bits = np.random.PCG64(seed)
    bits.advance(_PCG64_JUMP)
    rng = np.random.Generator(bits)
    factors = np.exp(noise * rng.standard_normal(steps) - 0.5 * noise**2)
    volumes: NDArray[np.float64] = per_step * factors
    return volumes
