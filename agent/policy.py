"""The range policy: a Gaussian Thompson-sampling bandit over range widths, per regime.

Arms are range widths in ticks (the full width of the position, centred on the current tick).
Each (regime, arm) keeps a running mean and variance of rewards; the prior is N(0, 1) in reward
units (percent of size) with a pseudo-count of one, so untried arms get explored first and a
handful of episodes moves the posterior. Sampling uses a ``random.Random`` seeded by the caller,
so a given seed and state always choose the same arm.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Full range widths in ticks: about ±1 %, ±2.5 %, ±5 %, ±10 %, ±20 % around the price.
DEFAULT_WIDTHS: tuple[int, ...] = (200, 500, 1000, 2000, 4000)
PRIOR_MEAN = 0.0
PRIOR_VAR = 1.0


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of the rewards seen for one arm."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations (Welford)

    def add(self, reward: float) -> ArmStats:
        n = self.n + 1
        delta = reward - self.mean
        mean = self.mean + delta / n
        return ArmStats(n=n, mean=mean, m2=self.m2 + delta * (reward - mean))

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else PRIOR_VAR


@dataclass(frozen=True)
class Choice:
    width_ticks: int
    expected_reward: float
    sampled: float


def posterior(stats: ArmStats) -> tuple[float, float]:
    """Posterior mean and standard deviation of an arm's mean reward (normal-normal)."""
    precision = 1.0 / PRIOR_VAR + stats.n / max(stats.variance, 1e-9)
    mean = (PRIOR_MEAN / PRIOR_VAR + stats.n * stats.mean / max(stats.variance, 1e-9)) / precision
    return mean, math.sqrt(1.0 / precision)


def choose_width(
    arms: Mapping[int, ArmStats],
    rng: random.Random,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    *,
    greedy: bool = False,
) -> Choice:
    """Thompson sampling (or the posterior-mean argmax when ``greedy``)."""
    best: Choice | None = None
    for width in widths:
        mean, std = posterior(arms.get(width, ArmStats()))
        draw = mean if greedy else rng.gauss(mean, std)
        if best is None or draw > best.sampled:
            best = Choice(width_ticks=width, expected_reward=mean, sampled=draw)
    if best is None:
        raise ValueError("the policy needs at least one range width")
    return best
