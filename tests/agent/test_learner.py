"""Learning gates: each blocks alone and names why; all passing applies the update."""

from __future__ import annotations

import math
from typing import Any

import pytest

from clmmd.agent.learner import decide_learning

PASSING: dict[str, Any] = {
    "status": "success",
    "exec_mode": "real",
    "learn_from_mock": False,
    "fresh_pct": 90.0,
    "fresh_pct_floor": 50.0,
    "regime_unknown": False,
}


def test_all_gates_passing_applies() -> None:
    decision = decide_learning(**PASSING)
    assert decision.apply
    assert decision.reason == "all gates passed"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "failed"}, "status is 'failed'"),
        ({"status": "skipped"}, "status is 'skipped'"),
        ({"exec_mode": "mock"}, "LEARN_FROM_MOCK=false"),
        ({"fresh_pct": 49.9}, "fresh_pct 49.9 below floor 50.0"),
        ({"fresh_pct": 0.0}, "below floor"),
        ({"fresh_pct": math.nan}, "below floor"),
        ({"regime_unknown": True}, "unknown component"),
    ],
)
def test_each_gate_alone_blocks_and_names_its_reason(change: dict[str, Any], reason: str) -> None:
    decision = decide_learning(**{**PASSING, **change})
    assert not decision.apply
    assert decision.reason.startswith("gate:")
    assert reason in decision.reason


def test_mock_episodes_learn_when_allowed() -> None:
    assert decide_learning(**{**PASSING, "exec_mode": "mock", "learn_from_mock": True}).apply


def test_the_floor_itself_passes() -> None:
    assert decide_learning(**{**PASSING, "fresh_pct": 50.0}).apply
    assert decide_learning(**{**PASSING, "fresh_pct": 0.0, "fresh_pct_floor": 0.0}).apply


def test_the_first_blocking_gate_is_the_reason() -> None:
    everything_wrong: dict[str, Any] = {
        "status": "failed",
        "exec_mode": "mock",
        "learn_from_mock": False,
        "fresh_pct": 1.0,
        "fresh_pct_floor": 50.0,
        "regime_unknown": True,
    }
    assert "status" in decide_learning(**everything_wrong).reason
    assert "LEARN_FROM_MOCK" in decide_learning(**{**everything_wrong, "status": "success"}).reason
