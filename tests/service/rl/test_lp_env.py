"""The Gymnasium environments: checker, seeding, no look-ahead, fidelity to the mock."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import clmmd.service.rl  # noqa: F401  (registers the ids)
from clmmd.agent.policy import DEFAULT_WIDTHS
from clmmd.agent.proposer import centred_range
from clmmd.agent.reward import outcome_reward
from clmmd.env.base import ExecutionRequest, MarketInputs, PoolSpec
from clmmd.env.mock import MockClmmEnv
from clmmd.service.analysis.evaluation_paired import baseline_ticks
from clmmd.service.rl import observation as obs
from clmmd.service.rl.lp_env import (
    UniswapV3LPContinuousEnv,
    UniswapV3LPEnv,
    offset_action,
)
from clmmd.service.rl.market import EpisodeMarket, SyntheticMarket
from clmmd.service.rl.registration import ENV_IDS


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_check_env_passes_without_a_warning(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_gymnasium_make_knows_the_ids_and_the_module_prefix(env_id: str) -> None:
    env = gym.make(env_id)
    assert env.spec is not None and env.spec.id == env_id
    prefixed = gym.make(f"clmmd.service.rl:{env_id}")
    assert type(prefixed.unwrapped) is type(env.unwrapped)


def _rollout(env: Any, seed: int | None, actions: list[Any]) -> list[Any]:
    observation, info = env.reset(seed=seed)
    trace: list[Any] = [observation.tolist(), info]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        trace.append((observation.tolist(), reward, terminated, truncated, info))
        if terminated:
            break
    return trace


def _actions(env: Any, seed: int, n: int = 24) -> list[Any]:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_same_seed_same_trajectory(env_id: str) -> None:
    first, second = gym.make(env_id), gym.make(env_id)
    actions = _actions(first, 7)
    assert _rollout(first, 5, actions) == _rollout(second, 5, actions)
    # Unseeded resets continue the seeded stream: the same on both.
    assert _rollout(first, None, actions) == _rollout(second, None, actions)
    # And a different seed is a different episode.
    assert _rollout(first, 6, actions) != _rollout(second, 5, actions)


def test_every_episode_ends_at_the_horizon_with_the_range_closed() -> None:
    env = UniswapV3LPEnv(horizon_hours=6, decision_minutes=30)
    env.reset(seed=1)
    steps, terminated = 0, False
    while not terminated:
        _, _, terminated, truncated, info = env.step(2 if steps == 0 else 0)
        steps += 1
        assert not truncated
    assert steps == 12
    episode = env.episode
    assert episode is not None
    # mint at the start, burn + collect at the end: the mock's gas for one position.
    inputs = episode.market.inputs
    assert info["gas_usd"] == pytest.approx(
        650_000 * inputs.gas_price_gwei * 1e-9 * inputs.eth_price_usd
    )
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def _mock_outcome(env: Any, ticks: tuple[int, int]) -> Any:
    """What MockClmmEnv gives the position ``ticks`` held over the env's current episode."""
    e = env.episode
    m = e.market
    request = ExecutionRequest(
        run_id="t",
        episode_id="ep_000001",
        pool=env.pool,
        tick_lower=ticks[0],
        tick_upper=ticks[1],
        size_usd=env.size_usd,
        risk_scalar=e.size_usd / env.size_usd,
        horizon_hours=env.horizon_hours,
        seed=m.path_seed,
        market=MarketInputs(**{k: getattr(m.inputs, k) for k in MarketInputs.__dataclass_fields__}),
    )
    return MockClmmEnv().run(request)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("width", DEFAULT_WIDTHS)
def test_holding_one_range_scores_what_the_mock_simulator_gives(seed: int, width: int) -> None:
    env = UniswapV3LPEnv()
    env.reset(seed=seed)
    assert env.episode is not None
    ticks = centred_range(env.pool, env.episode.price_usd, width)
    total, terminated, action = 0.0, False, env.action_for_width(width)
    while not terminated:
        _, reward, terminated, _, info = env.step(action)
        total += reward
        action = 0
    outcome = _mock_outcome(env, ticks)
    assert total == pytest.approx(outcome_reward(outcome).total, abs=1e-6)
    assert info["fees_usd"] == pytest.approx(outcome.fees_usd, rel=1e-9)
    assert info["gas_usd"] == pytest.approx(outcome.gas_cost_usd, rel=1e-12)
    assert info["pnl_usd"] == pytest.approx(outcome.pnl_usd, rel=1e-9, abs=1e-9)
    assert info["time_in_range_pct"] == pytest.approx(outcome.time_in_range_pct)


def test_the_continuous_static_5pct_range_is_the_evaluation_baseline() -> None:
    env = UniswapV3LPContinuousEnv()
    env.reset(seed=11)
    assert env.episode is not None
    u = offset_action(0.05)
    action = np.array([1.0, u, u], dtype=np.float32)
    assert env.ticks_for(action, env.episode.price_usd) == baseline_ticks(
        env.pool, env.episode.price_usd, 5.0
    )


def test_rebalancing_pays_gas_and_the_swap_and_rewards_add_up() -> None:
    env = UniswapV3LPEnv()
    env.reset(seed=4)
    rewards, terminated, t = [], False, 0
    while not terminated:
        # Reopen every six hours, alternating widths.
        action = (1 + (t // 6) % 2) if t % 6 == 0 else 0
        _, reward, terminated, _, info = env.step(action)
        rewards.append(reward)
        t += 1
    e = env.episode
    assert e is not None and e.rebalances == 3 and info["rebalances"] == 3
    inputs = e.market.inputs
    per_unit = inputs.gas_price_gwei * 1e-9 * inputs.eth_price_usd
    assert e.gas_usd == pytest.approx(4 * 650_000 * per_unit)
    assert e.swap_usd > 0
    # Rewards add up to the project's reward of the whole episode's totals.
    pnl = e.pnl_usd
    expected = (
        100 * (pnl - e.fees_usd + e.gas_usd) / e.size_usd
        + 100 * e.fees_usd / e.size_usd
        - 100 * e.gas_usd / e.size_usd
        - 0.5 * (1 - e.time_in_range_pct / 100)
    )
    assert sum(rewards) == pytest.approx(expected, abs=1e-9)


def test_staying_out_earns_nothing_and_pays_the_range_penalty() -> None:
    env = UniswapV3LPEnv()
    env.reset(seed=2)
    total, terminated = 0.0, False
    while not terminated:
        observation, reward, terminated, _, info = env.step(0)
        total += reward
    assert total == pytest.approx(-0.5)
    assert info["gas_usd"] == 0 and info["fees_usd"] == 0
    assert observation[obs.NAMES.index("has_position")] == 0


class _FixedMarket:
    def __init__(self, market: EpisodeMarket) -> None:
        self.market = market

    def draw(self, rng: np.random.Generator, pool: PoolSpec, horizon_hours: float) -> EpisodeMarket:
        return self.market


def _with_future_changed(market: EpisodeMarket, from_step: int, factor: float) -> EpisodeMarket:
    prices = market.prices_usd.copy()
    volumes = market.volumes_usd.copy()
    # A different future: every price after `from_step` moves, and every later volume.
    prices[from_step + 1 :] *= factor
    volumes[from_step:] *= 2.0
    return dataclasses.replace(market, prices_usd=prices, volumes_usd=volumes)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cut=st.integers(0, 22),
    factor=st.sampled_from([0.9, 0.97, 1.03, 1.1]),
    actions=st.lists(st.integers(0, len(DEFAULT_WIDTHS)), min_size=24, max_size=24),
)
def test_the_observation_never_contains_future_information(
    seed: int, cut: int, factor: float, actions: list[int]
) -> None:
    """Two markets equal up to decision ``cut`` and different after give the same
    observations, rewards and infos up to that decision, and differ once the change is past."""
    pool_env = UniswapV3LPEnv()
    market = SyntheticMarket().draw(np.random.default_rng(seed), pool_env.pool, 24.0)
    changed = _with_future_changed(market, cut * pool_env.steps_per_decision, factor)
    actions = [1, *actions[1:]]  # a range is open, so prices matter to the observation
    traces = []
    for m in (market, changed):
        env = UniswapV3LPEnv(market_source=_FixedMarket(m))
        traces.append(_rollout(env, seed, actions))
    original, altered = traces
    # reset observation + one entry per step; entry t+1 is the observation after step t,
    # i.e. at decision t+1.
    assert original[: cut + 2] == altered[: cut + 2]
    assert original[cut + 2][0] != altered[cut + 2][0]


def test_observation_fields_are_documented_and_in_bounds() -> None:
    env = UniswapV3LPEnv()
    observation, _ = env.reset(seed=0)
    assert observation.shape == (len(obs.FIELDS),) and observation.dtype == np.float32
    doc = obs.__doc__ or ""
    for name in obs.NAMES:
        stem = name.rsplit("_", 1)[0] if name.startswith(("gas_", "vol_", "flow_")) else name
        assert stem in doc, name
    assert env.observation_space.contains(observation)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decision_minutes": 7}, "whole multiple"),
        ({"horizon_hours": 1.5, "decision_minutes": 60}, "whole number"),
        ({"size_usd": 0}, "size_usd"),
        ({"pool": "0xdead"}, "unknown pool"),
        ({"widths": []}, "widths"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, KeyError), match=message):
        UniswapV3LPEnv(**kwargs)
