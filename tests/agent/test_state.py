"""Agent state: an immutable, versioned value; updates make new states."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.agent.policy import ArmStats
from clmmd.agent.state import AGENT_NAME, AGENT_RELEASE, AgentState

REGIME = "gas=low|vol=mid|flow=clean"
OTHER = "gas=high|vol=high|flow=toxic"


def test_a_new_state_is_version_zero_with_no_arms() -> None:
    state = AgentState()
    assert state.version == 0
    assert state.arms_for(REGIME) == {}
    assert state.agent_version == f"{AGENT_NAME}/{AGENT_RELEASE}+s0"


def test_with_reward_bumps_the_version_and_leaves_the_old_state_alone() -> None:
    old = AgentState().with_reward(REGIME, 200, 0.5).with_reward(OTHER, 1000, -1.0)
    old_arms = {k: dict(v) for k, v in old.arms.items()}

    new = old.with_reward(REGIME, 200, 1.5)

    assert new.version == old.version + 1 == 3
    assert new.agent_version.endswith("+s3")
    assert old.version == 2
    assert {k: dict(v) for k, v in old.arms.items()} == old_arms
    assert old.arms_for(REGIME)[200] == ArmStats().add(0.5)
    assert new.arms_for(REGIME)[200] == ArmStats().add(0.5).add(1.5)
    assert new.arms_for(OTHER) == old.arms_for(OTHER)


def test_updates_to_one_arm_do_not_touch_its_neighbours() -> None:
    state = AgentState().with_reward(REGIME, 200, 0.5).with_reward(REGIME, 500, 0.1)
    updated = state.with_reward(REGIME, 500, 0.3)
    assert updated.arms_for(REGIME)[200] == state.arms_for(REGIME)[200]
    assert updated.arms_for(REGIME)[500].n == 2


@given(
    st.lists(
        st.tuples(
            st.sampled_from([REGIME, OTHER]), st.sampled_from([200, 500]), st.floats(-10, 10)
        ),
        max_size=40,
    )
)
def test_version_counts_updates_and_arm_counts_add_up(
    updates: list[tuple[str, int, float]],
) -> None:
    state = AgentState()
    history = [state]
    for regime, width, reward in updates:
        state = state.with_reward(regime, width, reward)
        history.append(state)
    assert state.version == len(updates)
    assert sum(s.n for arms in state.arms.values() for s in arms.values()) == len(updates)
    # No update reached back into an earlier state.
    for version, earlier in enumerate(history):
        assert earlier.version == version
        assert sum(s.n for arms in earlier.arms.values() for s in arms.values()) == version


@pytest.mark.parametrize("reward", [math.nan, math.inf, -math.inf])
def test_a_non_finite_reward_is_refused(reward: float) -> None:
    state = AgentState().with_reward(REGIME, 200, 0.5)
    with pytest.raises(ValueError, match="finite"):
        state.with_reward(REGIME, 200, reward)
    assert state.version == 1
    assert state.arms_for(REGIME)[200].n == 1
