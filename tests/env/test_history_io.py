"""env.history_io: Parquet and CSV histories, round trips and what a user's file can get wrong."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clmmd.env.base import KNOWN_POOLS
from clmmd.env.history import HistoryError, make_history
from clmmd.env.history_io import parquet_bytes, read_history, write_csv
from tests.env.test_history import rows

POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]
BIG = 2**200  # beyond int64 and beyond Parquet's 76-digit decimals for int256 in general


def history_with_big_amounts():  # type: ignore[no-untyped-def]
    return make_history(**rows(amount0=[-BIG, BIG, 10], amount1=[BIG + 1, -BIG, -9]))


def test_parquet_round_trip_keeps_every_bit_and_the_pool(tmp_path: Path) -> None:
    history = history_with_big_amounts()
    path = tmp_path / "h.parquet"
    path.write_bytes(parquet_bytes(history, POOL))
    back, pool = read_history(path)
    assert pool == POOL
    assert back.amount0 == history.amount0 and back.amount1 == history.amount1
    assert back.sqrt_price_x96 == history.sqrt_price_x96 and back.liquidity == history.liquidity
    assert back.block_time.tolist() == history.block_time.tolist()
    assert back.tick.tolist() == history.tick.tolist()
    # What other tools see: a UTC timestamp column and the numbers as decimal text.
    table = pq.read_table(path)
    time_type = table.schema.field("block_time").type
    assert pa.types.is_timestamp(time_type) and time_type.tz == "UTC"
    assert table.column("amount0").to_pylist()[0] == str(-BIG)


def test_csv_round_trip_and_times_as_iso_or_unix_seconds(tmp_path: Path) -> None:
    history = history_with_big_amounts()
    written = tmp_path / "h.csv"
    write_csv(written, history)
    back, pool = read_history(written)
    assert pool is None
    assert back.amount0 == history.amount0
    assert back.block_time.tolist() == [100, 112, 112]
    header = ",".join(rows())
    lines = [header]
    for i in range(3):
        lines.append(",".join(str(rows()[c][i]) for c in rows()))
    unix = tmp_path / "unix.csv"
    unix.write_text("\n".join(lines) + "\n")
    assert read_history(unix)[0].block_time.tolist() == [100, 112, 112]
    dune = tmp_path / "dune.csv"
    dune.write_text(
        "\n".join(
            [header]
            + [
                line.replace("100,", "1970-01-01 00:01:40.000 UTC,", 1).replace(
                    "112,", "1970-01-01T00:01:52Z,", 1
                )
                for line in lines[1:]
            ]
        )
        + "\n"
    )
    assert read_history(dune)[0].block_time.tolist() == [100, 112, 112]


def test_integer_and_decimal_columns_are_accepted(tmp_path: Path) -> None:
    columns = rows()
    table = pa.table(
        {
            **{
                name: pa.array(values, pa.int64())
                for name, values in columns.items()
                if name not in ("sqrt_price_x96", "liquidity")
            },
            "sqrt_price_x96": pa.array(
                [Decimal(v) for v in columns["sqrt_price_x96"]], pa.decimal256(60, 0)
            ),
            "liquidity": pa.array([Decimal(v) for v in columns["liquidity"]], pa.decimal128(38, 0)),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    history, _ = read_history(path)
    assert history.sqrt_price_x96 == columns["sqrt_price_x96"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.drop_columns(["tick", "liquidity"]), r"missing column\(s\) liquidity, tick"),
        (
            lambda t: t.set_column(3, "amount0", pa.array(["1", "x2", "3"])),
            r"column amount0 row 1: 'x2' is not an integer",
        ),
        (
            lambda t: t.set_column(3, "amount0", pa.array(["1", None, "3"])),
            r"column amount0 is empty at row 1",
        ),
        (
            lambda t: t.set_column(0, "block_time", pa.array(["1970-01-01", "yesterday", "x"])),
            r"block_time row 1: 'yesterday' is not an ISO-8601 UTC time",
        ),
        (
            lambda t: t.set_column(2, "log_index", pa.array([3, 3, 3], pa.int64())),
            r"duplicated event: row 1",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_file_column_and_row(
    tmp_path: Path,
    edit,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    base = pa.table({name: pa.array([str(v) for v in values]) for name, values in rows().items()})
    base = base.set_column(2, "log_index", pa.array([3, 0, 5], pa.int64()))
    base = base.set_column(1, "block_number", pa.array([10, 10, 11], pa.int64()))
    path = tmp_path / "bad.parquet"
    pq.write_table(edit(base), path)
    with pytest.raises(HistoryError, match=message) as caught:
        read_history(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no such file"):
        read_history(tmp_path / "nope.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(HistoryError, match="unreadable"):
        read_history(junk)
