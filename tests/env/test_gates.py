"""Live-risk gates: all pass, each one alone blocks and is named, the size limit's boundary."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.env.base import ExecutionSkipped
from clmmd.env.gates import GATES, check_gates

ALL_PASS: dict[str, Any] = {
    "exec_mode": "real",
    "live_risk_ack": True,
    "pool_validated": True,
    "quote_ok": True,
    "size_usd": 100.0,
    "max_position_usd": 500.0,
}

#: One failing input per gate, everything else passing.
ONE_FAILURE: dict[str, dict[str, Any]] = {
    "EXEC_MODE": {"exec_mode": "mock"},
    "I_UNDERSTAND_LIVE_RISK": {"live_risk_ack": False},
    "pool_validated": {"pool_validated": False},
    "quote": {"quote_ok": False},
    "max_position_usd": {"size_usd": 500.01},
    "wallet_funds": {"funds_short": ("WETH: holds 0, the open needs 1",)},
    "allowance": {"allowance_missing": ("USDC",)},
}


def test_every_gate_passing_lets_execution_through() -> None:
    check_gates(**ALL_PASS)  # raises on any blocked gate


@pytest.mark.parametrize("gate", list(ONE_FAILURE))
def test_each_missing_gate_alone_blocks_and_is_named(gate: str) -> None:
    with pytest.raises(ExecutionSkipped) as info:
        check_gates(**{**ALL_PASS, **ONE_FAILURE[gate]})
    assert info.value.gate == gate
    assert str(info.value).startswith(f"{gate}: ")


def test_the_table_covers_every_gate() -> None:
    assert set(ONE_FAILURE) == set(GATES)


def blocked(**kwargs: Any) -> dict[str, Any]:
    return {
        "exec_mode": "mock",
        "live_risk_ack": False,
        "pool_validated": False,
        "quote_ok": False,
        "size_usd": 1e9,
        "max_position_usd": 1.0,
        "funds_short": ("x",),
        "allowance_missing": ("y",),
        **kwargs,
    }


def test_the_most_basic_missing_gate_is_named_first() -> None:
    with pytest.raises(ExecutionSkipped) as info:
        check_gates(**blocked())
    assert info.value.gate == "EXEC_MODE"
    with pytest.raises(ExecutionSkipped) as info:
        check_gates(**blocked(exec_mode="real"))
    assert info.value.gate == "I_UNDERSTAND_LIVE_RISK"


def test_gates_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        check_gates("real", True, True, True, 1.0, 10.0)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("size", "limit"), [(float("nan"), 10.0), (0.0, 10.0), (-1.0, 10.0), (1.0, float("inf"))]
)
def test_unusable_sizes_or_limits_block_on_the_size_gate(size: float, limit: float) -> None:
    with pytest.raises(ExecutionSkipped) as info:
        check_gates(**{**ALL_PASS, "size_usd": size, "max_position_usd": limit})
    assert info.value.gate == "max_position_usd"


@given(
    size=st.floats(min_value=0.01, max_value=1e7),
    limit=st.floats(min_value=0.01, max_value=1e7),
)
def test_size_gate_is_exactly_size_at_most_limit(size: float, limit: float) -> None:
    args = {**ALL_PASS, "size_usd": size, "max_position_usd": limit}
    if size <= limit:
        check_gates(**args)
    else:
        with pytest.raises(ExecutionSkipped):
            check_gates(**args)
