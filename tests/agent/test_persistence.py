"""Persisted agent state: atomic saves, no lost updates, restart, corrupt files moved aside."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.agent.persistence import (
    FORMAT_VERSION,
    LearningAgent,
    PersistentAgent,
    StateFormatError,
    default_state_path,
    read_state,
    state_from_json,
    state_to_json,
)
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import FakeClock, utc_iso
from clmmd.service.runs.runner import AgentHandle
from tests.conftest import CapturedLogs

REGIME = "gas=low|vol=mid|flow=clean"
OTHER = "gas=high|vol=high|flow=toxic"


def test_default_path_is_under_the_data_dir(tmp_path: Path) -> None:
    assert default_state_path(tmp_path) == tmp_path / "agent" / "state.json"


def test_both_agents_have_the_interface_the_runner_uses(tmp_path: Path, clock: FakeClock) -> None:
    # Typed assignments: mypy checks both against the protocol the lead wires into the runner.
    handle: LearningAgent = AgentHandle()
    persistent: LearningAgent = PersistentAgent(tmp_path / "state.json", clock)
    assert handle.state == persistent.state == AgentState()


async def test_state_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "agent" / "state.json"
    agent = PersistentAgent.load(path, clock, durable=False)
    for regime, width, reward in [(REGIME, 200, 0.5), (REGIME, 200, -0.25), (OTHER, 4000, 1e-7)]:
        clock.advance(60)
        await agent.learn(regime, width, reward)

    restarted = await PersistentAgent.open(path, clock, durable=False)

    assert restarted.state == agent.state
    assert restarted.state.agent_version == agent.state.agent_version
    assert restarted.state.agent_version.endswith("+s3")
    document = orjson.loads(path.read_bytes())
    assert document["format_version"] == FORMAT_VERSION
    assert document["state_version"] == 3
    assert document["updated_at"] == utc_iso(clock.now())
    assert document["regimes"][REGIME]["200"]["n"] == 2


async def test_a_missing_file_means_the_prior_and_nothing_is_written_until_learning(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "state.json"
    agent = PersistentAgent.load(path, clock)
    assert agent.state == AgentState()
    assert not path.exists()
    await agent.learn(REGIME, 500, 0.1)
    assert read_state(path) == agent.state


async def test_concurrent_learns_lose_nothing(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state.json"
    agent = PersistentAgent(path, clock, durable=False)
    rewards = [((i * 37) % 11 - 5) / 10 for i in range(60)]
    widths = [200, 500, 1000]

    states = await asyncio.gather(
        *(agent.learn(REGIME, widths[i % 3], r) for i, r in enumerate(rewards))
    )

    assert agent.state.version == len(rewards)
    # Every call got its own version: updates were applied one after the other.
    assert sorted(s.version for s in states) == list(range(1, len(rewards) + 1))
    arms = agent.state.arms_for(REGIME)
    assert sum(a.n for a in arms.values()) == len(rewards)
    for k, width in enumerate(widths):
        mine = rewards[k::3]
        assert arms[width].n == len(mine)
        assert math.isclose(arms[width].mean, sum(mine) / len(mine), abs_tol=1e-12)
    # The file holds the last state, not an earlier one saved late.
    assert read_state(path) == agent.state


async def test_a_failed_save_raises_and_leaves_the_state_unchanged(
    tmp_path: Path, clock: FakeClock
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    agent = PersistentAgent(blocker / "state.json", clock)
    with pytest.raises(OSError):
        await agent.learn(REGIME, 200, 0.5)
    assert agent.state.version == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"format": "clmmd-agent-state", "format_vers', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (
            b'{"format": "something-else", "format_version": 1}',
            "format: Input should be 'clmmd-agent-state'",
        ),
        (
            b'{"format": "clmmd-agent-state", "format_version": 99, "state_version": 1, '
            b'"regimes": {}}',
            "format_version: Input should be 1 (got 99)",
        ),
        (
            b'{"format": "clmmd-agent-state", "format_version": 1, "state_version": 5, '
            b'"regimes": {"r": {"200": {"n": 0, "mean": 0.1, "m2": 0.0}}}}',
            "regimes.r.200.n: Input should be greater than or equal to 1",
        ),
        (
            b'{"format": "clmmd-agent-state", "format_version": 1, "state_version": 5, '
            b'"regimes": {"r": {"200": {"n": 2, "mean": "NaN", "m2": 0.0}}}}',
            "regimes.r.200.mean: Input should be a valid number",
        ),
        (
            b'{"format": "clmmd-agent-state", "format_version": 1, "state_version": 5, '
            b'"regimes": {"r": {"wide": {"n": 2, "mean": 0.1, "m2": 0.0}}}}',
            "regimes.r.wide: String should match pattern",
        ),
        (
            b'{"format": "clmmd-agent-state", "format_version": 1, "state_version": 1, '
            b'"regimes": {"r": {"200": {"n": 3, "mean": 0.1, "m2": 0.0}}}}',
            "below the 3 rewards",
        ),
    ],
)
def test_a_corrupt_file_is_moved_aside_and_the_agent_starts_from_its_prior(
    tmp_path: Path, clock: FakeClock, captured_logs: CapturedLogs, content: bytes, reason: str
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)

    agent = PersistentAgent.load(path, clock)

    assert agent.state == AgentState()
    assert not path.exists()
    moved = tmp_path / f"state.json.corrupt-{clock.now().strftime('%Y%m%dT%H%M%SZ')}"
    assert moved.read_bytes() == content
    (event,) = captured_logs.events("agent_state_corrupt")
    assert event["level"] == "warning"
    assert event["path"] == str(path)
    assert event["moved_to"] == str(moved)
    assert reason in str(event["reason"])


async def test_two_corrupt_files_in_the_same_second_keep_both(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"first")
    PersistentAgent.load(path, clock)
    path.write_bytes(b"second")
    agent = PersistentAgent.load(path, clock)
    moved = sorted(p.read_bytes() for p in tmp_path.glob("state.json.corrupt-*"))
    assert moved == [b"first", b"second"]
    # The fresh agent saves normally after the files were moved aside.
    await agent.learn(REGIME, 200, 0.5)
    assert read_state(path) == agent.state


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(
    st.lists(
        st.tuples(st.sampled_from([REGIME, OTHER]), st.sampled_from([200, 500, 4000]), finite),
        max_size=30,
    )
)
def test_json_round_trip_is_exact(updates: list[tuple[str, int, float]]) -> None:
    state = AgentState()
    for regime, width, reward in updates:
        state = state.with_reward(regime, width, reward)
    encoded = orjson.dumps(state_to_json(state, "2026-01-01T00:00:00Z"))
    restored = state_from_json(orjson.loads(encoded))
    assert restored == state
    assert restored.agent_version == state.agent_version


def test_state_from_json_names_the_problem() -> None:
    with pytest.raises(StateFormatError, match="regimes: Input should be a valid dictionary"):
        state_from_json(
            {"format": "clmmd-agent-state", "format_version": 1, "state_version": 0, "regimes": []}
        )


async def test_a_second_process_cannot_learn_into_the_same_state(tmp_path: Path) -> None:
    import subprocess
    import sys

    from clmmd.agent.persistence import StateLockedError

    path = tmp_path / "agent" / "state.json"
    path.parent.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(path) + '.lock'!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        agent = PersistentAgent(path, FakeClock(), durable=False)
        with pytest.raises(StateLockedError, match=f"pid {holder.pid}"):
            await agent.learn("gas=low|vol=low|flow=clean", 1000, 0.5)
        assert agent.state.version == 0 and not path.exists()
    finally:
        holder.kill()
        holder.wait()


async def test_first_update_starts_from_what_another_agent_saved_since(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    stale = PersistentAgent(path, FakeClock(), durable=False)  # loaded before the others learned
    other = PersistentAgent(path, FakeClock(), durable=False)
    for _ in range(3):
        await other.learn("gas=low|vol=low|flow=clean", 500, 1.0)
    state = await stale.learn("gas=low|vol=low|flow=clean", 500, 1.0)
    assert state.version == 4
    assert state.arms_for("gas=low|vol=low|flow=clean")[500].n == 4
