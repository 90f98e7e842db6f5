"""Swap histories on disk: Parquet (what clmmd stores) and CSV (what a user may hand it).

Why Parquet (through pyarrow) rather than numpy arrays: a page is one self-describing,
compressed, typed file (columns named like the Swap event, the pool's description in the schema
metadata), written once and atomically, that pandas, polars or DuckDB open as they are; a
``.npy`` file can hold neither a 256-bit integer (only as pickled objects) nor the pool's
description. The four 256-bit columns are stored as decimal text: int256 does not fit int64,
and Parquet's widest decimal (76 digits) is narrower than int256, while the text converts back
to Python ints at ~0.2 µs a value.

Accepted on reading, per column: integers or decimal text for the big integers;
``block_time`` as a Parquet timestamp, Unix seconds, or ISO-8601 text (a trailing ``Z`` or
`` UTC`` allowed, no other zone). Anything else is a :class:`env.history.HistoryError` naming
the file, the column and the row.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray
from pydantic import TypeAdapter, ValidationError

from clmmd.env.base import PoolSpec
from clmmd.env.history import (
    BIG_INT_COLUMNS,
    HISTORY_COLUMNS,
    HistoryError,
    SwapHistory,
    check_history,
)

#: Schema-metadata key holding the pool's description (JSON of :class:`env.base.PoolSpec`).
POOL_METADATA_KEY = b"clmmd.pool"
_POOL_ADAPTER: TypeAdapter[PoolSpec] = TypeAdapter(PoolSpec)
_ISO_SUFFIX = re.compile(r"(Z| UTC|\+00:00)$")
_SMALL_INT_COLUMNS = ("block_number", "log_index", "tick")


def history_table(history: SwapHistory, pool: PoolSpec | None = None) -> pa.Table:
    """The Arrow table clmmd writes: typed small columns, decimal text for big integers."""
    columns: dict[str, pa.Array] = {
        "block_time": pa.array(
            history.block_time.astype("datetime64[s]"), pa.timestamp("s", "UTC")
        ),
        "block_number": pa.array(history.block_number, pa.int64()),
        "log_index": pa.array(history.log_index, pa.int64()),
        "tick": pa.array(history.tick, pa.int32()),
    }
    for name in BIG_INT_COLUMNS:
        columns[name] = pa.array([str(v) for v in getattr(history, name)], pa.string())
    table = pa.table({name: columns[name] for name in HISTORY_COLUMNS})
    if pool is not None:
        table = table.replace_schema_metadata({POOL_METADATA_KEY: _POOL_ADAPTER.dump_json(pool)})
    return table


def parquet_bytes(history: SwapHistory, pool: PoolSpec | None = None) -> bytes:
    """One Parquet file (zstd) as bytes, for an atomic write by the caller."""
    sink = pa.BufferOutputStream()
    pq.write_table(history_table(history, pool), sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def write_csv(path: Path, history: SwapHistory) -> None:
    """A CSV with the same columns (block_time as ISO-8601 UTC); for people and spreadsheets."""
    table = history_table(history)
    pacsv.write_csv(table, path)


def read_history(path: Path) -> tuple[SwapHistory, PoolSpec | None]:
    """Read and check a ``.parquet`` or ``.csv`` history; the pool if the file names one."""
    if not path.is_file():
        raise HistoryError(f"history file {path}: no such file")
    try:
        if path.suffix.lower() == ".csv":
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in (*BIG_INT_COLUMNS, "block_time")}
                ),
            )
        else:
            table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HistoryError(f"history file {path}: unreadable: {first}") from None
    history = history_from_table(table, str(path))
    return history, pool_from_metadata(table.schema.metadata, str(path))


def pool_from_metadata(metadata: dict[bytes, bytes] | None, where: str) -> PoolSpec | None:
    raw = (metadata or {}).get(POOL_METADATA_KEY)
    if raw is None:
        return None
    try:
        return _POOL_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise HistoryError(f"{where}: unreadable pool metadata: {exc.errors()[0]['msg']}") from None


def history_from_table(table: pa.Table, where: str) -> SwapHistory:
    """Convert and :func:`env.history.check_history` an Arrow table with the history columns."""
    missing = [name for name in HISTORY_COLUMNS if name not in table.column_names]
    if missing:
        raise HistoryError(
            f"{where}: missing column(s) {', '.join(missing)} "
            f"(a history needs {', '.join(HISTORY_COLUMNS)})"
        )
    small = {name: _small_ints(table.column(name), name, where) for name in _SMALL_INT_COLUMNS}
    big = {name: _big_ints(table.column(name), name, where) for name in BIG_INT_COLUMNS}
    history = SwapHistory(
        block_time=_unix_seconds(table.column("block_time"), where),
        block_number=small["block_number"],
        log_index=small["log_index"],
        tick=small["tick"],
        **big,
    )
    try:
        check_history(history)
    except HistoryError as exc:
        raise HistoryError(f"{where}: {exc}") from None
    return history


def _null_row(column: pa.ChunkedArray) -> int | None:
    if column.null_count == 0:
        return None
    return int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))


def _reject_nulls(column: pa.ChunkedArray, name: str, where: str) -> None:
    row = _null_row(column)
    if row is not None:
        raise HistoryError(f"{where}: column {name} is empty at row {row}")


def _small_ints(column: pa.ChunkedArray, name: str, where: str) -> NDArray[np.int64]:
    _reject_nulls(column, name, where)
    if pa.types.is_integer(column.type):
        return np.asarray(column.to_numpy(), dtype=np.int64)
    values = _big_ints(column, name, where)
    return np.asarray(values, dtype=np.int64)


def _big_ints(column: pa.ChunkedArray, name: str, where: str) -> list[int]:
    _reject_nulls(column, name, where)
    if pa.types.is_integer(column.type):
        return [int(v) for v in column.to_numpy()]
    if pa.types.is_decimal(column.type):
        column = column.cast(pa.string())
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise HistoryError(f"{where}: column {name} has type {column.type}, expected integers")
    texts = column.to_pylist()
    try:
        return [int(text) for text in texts]
    except ValueError:
        for row, text in enumerate(texts):
            try:
                int(text)
            except ValueError:
                raise HistoryError(
                    f"{where}: column {name} row {row}: {text!r} is not an integer"
                ) from None
        raise


def _unix_seconds(column: pa.ChunkedArray, where: str) -> NDArray[np.int64]:
    _reject_nulls(column, "block_time", where)
    if pa.types.is_timestamp(column.type):
        if column.type.tz not in (None, "UTC", "utc", "+00:00", "Etc/UTC"):
            raise HistoryError(f"{where}: block_time has time zone {column.type.tz}, expected UTC")
        seconds = column.cast(pa.timestamp("s", column.type.tz)).cast(pa.int64())
        return np.asarray(seconds.to_numpy(), dtype=np.int64)
    if pa.types.is_integer(column.type):
        return np.asarray(column.to_numpy(), dtype=np.int64)
    if not pa.types.is_string(column.type):
        raise HistoryError(f"{where}: block_time has type {column.type}, expected a time")
    texts: list[str] = column.to_pylist()
    if all(text.isdigit() for text in texts):
        return np.asarray([int(text) for text in texts], dtype=np.int64)
    cleaned = [_ISO_SUFFIX.sub("", text.strip()) for text in texts]
    try:
        moments = np.array(cleaned, dtype="datetime64[s]")
    except ValueError:
        for row, text in enumerate(cleaned):
            try:
                np.datetime64(text, "s")
            except ValueError:
                raise HistoryError(
                    f"{where}: block_time row {row}: {texts[row]!r} is not an ISO-8601 UTC time "
                    "or Unix seconds"
                ) from None
        raise
    return moments.astype(np.int64)


def pool_metadata_json(pool: PoolSpec) -> dict[str, Any]:
    """The pool's description as plain JSON (what the store's ``pool.json`` holds)."""
    return dataclasses.asdict(pool)
