"""Item 10 of issue 13: extreme but finite statistics never cost the learned state.

Before the fix, an arm whose mean sat near the float limit took one more reward, overflowed to
infinity, was saved as JSON ``null``, and the next start moved the whole state file aside as
corrupt: every regime's learning lost for one bad update. Now the update is refused (the
episode records "learning update failed") and the file keeps what it had; the same at the
version limit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clmmd.agent.persistence import PersistentAgent, StateFormatError, read_state
from clmmd.agent.policy import ArmStats
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import FakeClock
from tests.conftest import CapturedLogs

EXTREME = "gas=high|vol=high|flow=toxic"
ORDINARY = "gas=low|vol=mid|flow=clean"
MAX_COUNT = 2**64 - 1  # JSON integers are read and written as unsigned 64-bit


def extreme_state(version: int) -> AgentState:
    return AgentState(
        version=version,
        arms={
            EXTREME: {1000: ArmStats(n=3, mean=1e308, m2=1e308)},
            ORDINARY: {500: ArmStats(n=2, mean=0.1, m2=0.01)},
        },
    )


async def test_an_overflowing_update_is_refused_and_the_state_survives_a_restart(
    tmp_path: Path, clock: FakeClock, captured_logs: CapturedLogs
) -> None:
    path = tmp_path / "agent" / "state.json"
    PersistentAgent(path, clock, durable=False).save_sync(extreme_state(version=5))
    agent = PersistentAgent.load(path, clock, durable=False)
    assert agent.state.arms_for(EXTREME)[1000].mean == 1e308  # finite: loads as it is

    with pytest.raises(ValueError, match="overflow"):
        await agent.learn(EXTREME, 1000, -1e308)
    await agent.learn(ORDINARY, 500, 0.3)  # the rest of the state keeps learning

    restarted = PersistentAgent.load(path, clock, durable=False)
    assert captured_logs.events("agent_state_corrupt") == []
    assert restarted.state.version == 6
    assert restarted.state.arms_for(EXTREME)[1000] == ArmStats(n=3, mean=1e308, m2=1e308)
    assert restarted.state.arms_for(ORDINARY)[500].n == 3
    assert list(path.parent.glob("*.corrupt-*")) == []


async def test_the_version_stops_at_its_limit_instead_of_breaking_the_file(
    tmp_path: Path, clock: FakeClock, captured_logs: CapturedLogs
) -> None:
    path = tmp_path / "agent" / "state.json"
    PersistentAgent(path, clock, durable=False).save_sync(extreme_state(version=MAX_COUNT - 1))
    agent = PersistentAgent.load(path, clock, durable=False)
    await agent.learn(ORDINARY, 500, 0.2)  # reaches the limit exactly
    with pytest.raises(ValueError, match="limit"):
        await agent.learn(ORDINARY, 500, 0.2)
    restarted = PersistentAgent.load(path, clock, durable=False)
    assert restarted.state.version == MAX_COUNT
    assert captured_logs.events("agent_state_corrupt") == []


def test_a_state_that_could_not_be_read_back_is_never_written(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "agent" / "state.json"
    good = extreme_state(version=5)
    agent = PersistentAgent(path, clock, durable=False)
    agent.save_sync(good)
    broken = AgentState(
        version=6, arms={EXTREME: {1000: ArmStats(n=4, mean=1e308, m2=float("inf"))}}
    )
    with pytest.raises(StateFormatError, match="refusing to save"):
        agent.save_sync(broken)
    assert read_state(path) == good
