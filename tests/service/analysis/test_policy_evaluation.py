"""A policy of the LP environment against the static range on the same markets."""

from __future__ import annotations

import numpy as np
import pytest

from clmmd.service.analysis.policy_evaluation import (
    compare_to_static,
    constant_policy,
    static_return,
)
from clmmd.service.rl.lp_env import (
    UniswapV3LPContinuousEnv,
    UniswapV3LPEnv,
    offset_action,
)


def test_the_baseline_played_as_a_policy_differs_by_exactly_zero() -> None:
    """Both arms see the same market: the continuous env's ±5 % action is the baseline."""
    env = UniswapV3LPContinuousEnv()
    u = offset_action(0.05)
    open_then_keep = np.array([1.0, u, u], dtype=np.float32)
    keep = np.array([-1.0, 0.0, 0.0], dtype=np.float32)

    def policy(observation: np.ndarray) -> np.ndarray:
        return open_then_keep if observation[-1] == 0.0 else keep

    report = compare_to_static(env, policy, episodes=20, first_seed=50)
    assert report.policy_returns == report.baseline_returns
    assert report.difference.mean == 0.0 and report.difference.low == 0.0


def test_wider_ranges_beat_the_5pct_range_and_staying_out_is_a_flat_penalty() -> None:
    env = UniswapV3LPEnv()
    wide = compare_to_static(env, constant_policy(5), episodes=60)  # 4000 ticks ≈ ±20 %
    assert wide.difference.low is not None and wide.difference.low > 0
    narrow = compare_to_static(env, constant_policy(1), episodes=60)  # 200 ticks ≈ ±1 %
    assert narrow.difference.high is not None and narrow.difference.high < 0
    out = compare_to_static(env, constant_policy(0), episodes=10)
    assert out.policy_returns == pytest.approx([-0.5] * 10)
    assert out.first_actions == {"0": 10}


def test_static_return_depends_only_on_the_seed() -> None:
    a, b = UniswapV3LPEnv(), UniswapV3LPEnv()
    b.reset(seed=999)  # a different history must not matter
    assert static_return(a, 7, 5.0) == static_return(b, 7, 5.0)
    assert static_return(a, 7, 5.0) != static_return(a, 8, 5.0)


def test_an_interval_needs_two_episodes() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        compare_to_static(UniswapV3LPEnv(), constant_policy(1), episodes=1)
