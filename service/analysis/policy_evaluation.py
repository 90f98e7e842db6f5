"""A policy of the LP Gymnasium environment against a static range, on the same markets.

What ``clmmd evaluate`` does for the bandit agent, for any policy of
``clmmd/UniswapV3LP-v0`` or ``clmmd/UniswapV3LPContinuous-v0`` (a trained stable-baselines3
model, a hand-written rule): for every evaluation seed, the environment is reset with that
seed twice, so both arms see the same market and price path; the policy plays one episode,
the baseline opens the static range ``price × (1 ± X/100)`` (widened to the tick spacing, as
``clmmd evaluate``'s baseline) at the first decision and keeps it. The returns are the
project's reward (percent of the deployed size); the comparison is the paired difference per
episode with its 95 % Student-t interval (:mod:`clmmd.service.analysis.evaluation_stats`).

Held out: training draws its episodes from the environment's own random stream (one seeded
reset, then unseeded ones); evaluation seeds are separate ``reset(seed=…)`` calls, so their
markets are not training markets (the chance that two 63-bit path seeds collide is nil).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from clmmd.service.analysis.evaluation_paired import baseline_ticks
from clmmd.service.analysis.evaluation_stats import Interval, mean_interval, paired_difference

#: A policy: observation in, action out
#: (e.g. ``lambda o: model.predict(o, deterministic=True)[0]`` for a stable-baselines3 model).
Policy = Callable[[NDArray[np.float32]], Any]

#: Evaluation seeds start here unless told otherwise (far from any seed a user trains with).
HELD_OUT_FIRST_SEED = 1_000_000


@dataclass(frozen=True)
class PolicyComparison:
    """Returns of both arms per seed and the intervals of ``clmmd evaluate``."""

    seeds: tuple[int, ...]
    policy_returns: tuple[float, ...]
    baseline_returns: tuple[float, ...]
    baseline_width_pct: float
    first_actions: dict[str, int]  # how often the policy's first action was each action
    policy: Interval
    baseline: Interval
    difference: Interval

    def summary(self) -> str:
        """Three lines: both arms and the paired difference with 95 % intervals."""

        def cell(i: Interval) -> str:
            return f"{i.mean:+.4f} [{i.low:+.4f}, {i.high:+.4f}]"

        flag = " (interval above zero)" if self.difference.low and self.difference.low > 0 else ""
        return "\n".join(
            [
                f"held-out episodes: {len(self.seeds)} (seeds {self.seeds[0]}…{self.seeds[-1]})",
                f"policy            {cell(self.policy)}",
                f"static ±{self.baseline_width_pct:g} %       {cell(self.baseline)}",
                f"policy − static   {cell(self.difference)}{flag}",
                f"policy's first actions: {self.first_actions}",
            ]
        )


def policy_return(env: Any, policy: Policy, seed: int) -> tuple[float, Any]:
    """The return of one episode of ``policy`` on ``env`` reset with ``seed``, and its first
    action."""
    observation, _ = env.reset(seed=seed)
    total, terminated, truncated, first = 0.0, False, False, None
    while not (terminated or truncated):
        action = policy(observation)
        if first is None:
            first = action
        observation, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
    return total, first


def static_return(env: Any, seed: int, width_pct: float) -> float:
    """The return of the static ±``width_pct`` % range on the episode of ``seed``."""
    env.reset(seed=seed)
    episode = env.unwrapped.episode
    ticks: tuple[int, int] | None = baseline_ticks(env.unwrapped.pool, episode.price_usd, width_pct)
    total = 0.0
    while not episode.done:
        total += episode.step(ticks).reward
        ticks = None
    return total


def compare_to_static(
    env: Any,
    policy: Policy,
    *,
    episodes: int,
    first_seed: int = HELD_OUT_FIRST_SEED,
    baseline_width_pct: float = 5.0,
) -> PolicyComparison:
    """``policy`` against the static range on seeds ``first_seed``… (both arms on each)."""
    if episodes < 2:
        raise ValueError(f"episodes must be at least 2 for an interval, got {episodes}")
    seeds = tuple(range(first_seed, first_seed + episodes))
    policy_returns: list[float] = []
    baseline_returns: list[float] = []
    firsts: Counter[str] = Counter()
    for seed in seeds:
        value, first = policy_return(env, policy, seed)
        policy_returns.append(value)
        firsts[str(np.asarray(first).round(3).tolist())] += 1
        baseline_returns.append(static_return(env, seed, baseline_width_pct))
    return PolicyComparison(
        seeds=seeds,
        policy_returns=tuple(policy_returns),
        baseline_returns=tuple(baseline_returns),
        baseline_width_pct=baseline_width_pct,
        first_actions=dict(sorted(firsts.items())),
        policy=mean_interval(policy_returns),
        baseline=mean_interval(baseline_returns),
        difference=paired_difference(policy_returns, baseline_returns),
    )


def constant_policy(action: Any) -> Policy:
    """A policy that plays ``action`` at the first decision and keeps (0) after — the bandit
    agent's way of playing the discrete environment."""

    def play(observation: NDArray[np.float32]) -> Any:
        from clmmd.service.rl.observation import NAMES

        progress = float(observation[NAMES.index("progress")])
        return action if progress == 0.0 else 0

    return play


__all__: Sequence[str] = (
    "HELD_OUT_FIRST_SEED",
    "Policy",
    "PolicyComparison",
    "compare_to_static",
    "constant_policy",
    "policy_return",
    "static_return",
)
