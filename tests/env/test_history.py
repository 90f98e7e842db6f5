"""env.history: the one check every history goes through, and its one-line errors."""

from __future__ import annotations

from typing import Any

import pytest

from clmmd.env.history import HistoryError, SwapHistory, make_history

P = 2**96  # price 1


def rows(**changes: Any) -> dict[str, list[int]]:
    """Three valid events (a swap up, then two down); ``changes`` replace whole columns."""
    columns: dict[str, list[int]] = {
        "block_time": [100, 112, 112],
        "block_number": [10, 11, 11],
        "log_index": [3, 0, 5],
        "amount0": [-999, 1000, 10],
        "amount1": [1000, -998, -9],
        "sqrt_price_x96": [P + 10**20, P, P - 10**18],
        "liquidity": [10**21, 10**21, 10**21],
        "tick": [0, 0, -1],
    }
    columns.update(changes)
    return columns


def test_a_valid_history_passes_and_slices_by_time() -> None:
    history = make_history(**rows())
    assert len(history) == 3
    assert len(history.between(100, 112)) == 1
    assert history.index_at(111) == 0 and history.index_at(112) == 2 and history.index_at(99) == -1
    assert isinstance(history.rows(1, 3), SwapHistory)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"log_index": [3, 0, 0]}, r"duplicated event: row 2 \(block 11, log index 0\)"),
        ({"block_number": [10, 12, 11]}, r"events not sorted: row 2 \(block 11, log index 5\)"),
        ({"log_index": [3, 5, 0]}, r"events not sorted: row 2"),
        ({"block_time": [100, 112, 111]}, r"events not sorted: row 2 .* block_time"),
        ({"tick": [0, 0, -900000]}, r"row 2 .*tick=-900000 outside"),
        ({"tick": [0, 5, -1]}, r"row 1 .*tick=5 does not match sqrt_price_x96"),
        ({"sqrt_price_x96": [P, P, 1]}, r"row 2 .*sqrt_price_x96=1 outside"),
        ({"liquidity": [10**21, -1, 0]}, r"row 1 .*liquidity=-1 outside uint128"),
        ({"amount0": [-999, 1000, -10]}, r"row 2 .*amount0=-10 and amount1=-9: exactly one"),
        ({"amount1": [1000, 998, -9]}, r"row 1 .*exactly one must be > 0"),
        ({"block_number": [-1, 11, 11]}, r"row 0 .*must be >= 0"),
    ],
)
def test_each_problem_is_one_line_naming_row_and_value(
    changes: dict[str, list[int]], message: str
) -> None:
    with pytest.raises(HistoryError, match=message) as caught:
        make_history(**rows(**changes))
    assert "\n" not in str(caught.value)


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(HistoryError, match="different lengths"):
        make_history(**rows(tick=[0, 0]))
