"""Thompson policy: correct statistics, deterministic per seed, finds the best arm."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.agent.policy import (
    DEFAULT_WIDTHS,
    PRIOR_MEAN,
    PRIOR_VAR,
    ArmStats,
    choose_width,
    posterior,
)
from clmmd.agent.state import AgentState


@given(st.lists(st.floats(min_value=-100, max_value=100), min_size=1, max_size=50))
def test_arm_stats_track_mean_and_sample_variance(rewards: list[float]) -> None:
    stats = ArmStats()
    for r in rewards:
        stats = stats.add(r)
    assert stats.n == len(rewards)
    assert stats.mean == pytest.approx(statistics.fmean(rewards), abs=1e-9)
    if len(rewards) > 1:
        assert stats.variance == pytest.approx(statistics.variance(rewards), rel=1e-6, abs=1e-9)
    else:
        assert stats.variance == PRIOR_VAR


def test_add_returns_a_new_value() -> None:
    empty = ArmStats()
    one = empty.add(2.0)
    assert empty == ArmStats()
    assert (one.n, one.mean) == (1, 2.0)


def test_posterior_of_an_untried_arm_is_the_prior() -> None:
    mean, std = posterior(ArmStats())
    assert mean == PRIOR_MEAN
    assert std == pytest.approx(PRIOR_VAR**0.5)


def test_posterior_moves_towards_the_data_and_narrows() -> None:
    stats = ArmStats()
    prior_std = posterior(stats)[1]
    rng = random.Random(3)
    stds: dict[int, float] = {}
    for n in range(1, 201):
        stats = stats.add(0.8 + rng.gauss(0, 0.2))
        stds[n] = posterior(stats)[1]
    # Not monotone (the plug-in variance moves with the data) but narrowing with evidence.
    assert prior_std > stds[10] > stds[200]
    mean, std = posterior(stats)
    assert mean == pytest.approx(stats.mean, abs=0.01)
    assert std < 0.05


def learned_arms() -> dict[int, ArmStats]:
    arms: dict[int, ArmStats] = {}
    for width, rewards in {200: [0.1, -0.3], 1000: [0.4, 0.6, 0.5], 4000: [0.0]}.items():
        stats = ArmStats()
        for r in rewards:
            stats = stats.add(r)
        arms[width] = stats
    return arms


@pytest.mark.parametrize("arms", [{}, learned_arms()])
def test_same_seed_and_state_choose_the_same_arm(arms: dict[int, ArmStats]) -> None:
    for seed in range(20):
        first = choose_width(arms, random.Random(seed))
        again = choose_width(arms, random.Random(seed))
        assert first == again
        assert first.width_ticks in DEFAULT_WIDTHS


def test_different_seeds_explore_an_untrained_state() -> None:
    widths = {choose_width({}, random.Random(seed)).width_ticks for seed in range(50)}
    assert widths == set(DEFAULT_WIDTHS)


def test_greedy_picks_the_best_posterior_mean_whatever_the_rng() -> None:
    arms = learned_arms()
    best = max(DEFAULT_WIDTHS, key=lambda w: posterior(arms.get(w, ArmStats()))[0])
    for seed in range(10):
        choice = choose_width(arms, random.Random(seed), greedy=True)
        assert choice.width_ticks == best == 1000
        assert choice.sampled == choice.expected_reward


def test_choice_reports_the_posterior_mean_of_the_chosen_arm() -> None:
    arms = learned_arms()
    choice = choose_width(arms, random.Random(1))
    assert choice.expected_reward == posterior(arms.get(choice.width_ticks, ArmStats()))[0]


def test_custom_widths_and_no_widths() -> None:
    assert choose_width({}, random.Random(0), (777,)).width_ticks == 777
    with pytest.raises(ValueError, match="at least one"):
        choose_width({}, random.Random(0), ())


TRUE_MEANS = {200: -0.2, 500: 0.1, 1000: 0.5, 2000: 0.2, 4000: 0.0}
BEST = max(TRUE_MEANS, key=lambda w: TRUE_MEANS[w])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thompson_finds_the_best_arm_of_a_synthetic_problem(seed: int) -> None:
    noise = random.Random(seed)
    state = AgentState()
    regime = "gas=low|vol=mid|flow=clean"
    for step in range(300):
        choice = choose_width(state.arms_for(regime), random.Random(seed * 1_000_003 + step))
        observed = TRUE_MEANS[choice.width_ticks] + noise.gauss(0, 0.3)
        state = state.with_reward(regime, choice.width_ticks, observed)
    assert state.version == 300
    picks = [
        choose_width(state.arms_for(regime), random.Random(10**9 + i)).width_ticks
        for i in range(500)
    ]
    assert picks.count(BEST) / len(picks) >= 0.9
    # Every arm was tried: the prior made it explore before settling.
    assert set(state.arms_for(regime)) == set(TRUE_MEANS)
