"""Swap histories in the data dir, one Parquet page per pool and UTC day, fetched on demand.

Layout: ``<data_dir>/history/<pool address>/pool.json`` (the pool's description) and
``.../pages/YYYY-MM-DD.parquet`` (every Swap event of that UTC day). A page is written once,
atomically (temporary file, fsync, link), and only when its day is over and settled
(:data:`SETTLE_S` after midnight, for the indexer to catch up): a day still going on is fetched
into memory each time and never stored, so a stored page is always complete.

Fetching is resumable: :meth:`HistoryStore.fetch` asks its :class:`PageSource` only for the
days it does not have, one day at a time, storing each as it arrives; an interrupted fetch
loses at most the page in flight. Loading concatenates pages and drops repeated events by
``(block_number, log_index)`` (a source may return an event at a day's edge twice); two
*different* events under one key are an error, as is anything :func:`env.history.check_history`
rejects.

Everything here blocks on disk except :meth:`HistoryStore.fetch`, which runs its disk work in
worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import orjson

from clmmd.artifacts.writer import ArtifactExistsError, write_new
from clmmd.env.base import PoolSpec
from clmmd.env.history import (
    HistoryError,
    SwapHistory,
    check_history,
    concat_histories,
    empty_history,
    utc_text,
)
from clmmd.env.history_io import parquet_bytes, read_history

DAY_S = 86_400
#: A day's page is stored only this long after the day ended (indexers lag the chain).
SETTLE_S = 3 * 3600
_PAGE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.parquet$")


class PageSource(Protocol):
    """Where a history's pages come from: a file, or Dune."""

    @property
    def name(self) -> str: ...

    async def fetch_page(self, pool: PoolSpec, start_s: int, end_s: int) -> SwapHistory:
        """Every Swap event of ``pool`` with ``start_s <= block_time < end_s``, checked."""
        ...


class FileSource:
    """Pages cut from one CSV or Parquet file (read once, in a worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._history: SwapHistory | None = None
        self.pool: PoolSpec | None = None

    @property
    def name(self) -> str:
        return f"file {self.path}"

    def load(self) -> SwapHistory:
        if self._history is None:
            self._history, self.pool = read_history(self.path)
        return self._history

    async def fetch_page(self, pool: PoolSpec, start_s: int, end_s: int) -> SwapHistory:
        history = await asyncio.to_thread(self.load)
        return history.between(start_s, end_s)


@dataclass(frozen=True)
class FetchReport:
    """What :meth:`HistoryStore.fetch` did."""

    pages_stored: int  # fetched and written
    pages_present: int  # already in the store
    pages_open: int  # days not over (or not settled): fetched, held in memory, not stored
    swaps: int  # events in the window, after de-duplication


def day_start(unix_s: int) -> int:
    return unix_s - unix_s % DAY_S


def _day_name(start_s: int) -> str:
    return datetime.fromtimestamp(start_s, UTC).strftime("%Y-%m-%d")


def days_covering(start_s: int, end_s: int) -> list[int]:
    """Start of every UTC day that ``[start_s, end_s]`` touches."""
    if end_s < start_s:
        raise ValueError(f"end {utc_text(end_s)} is before start {utc_text(start_s)}")
    return list(range(day_start(start_s), day_start(end_s) + 1, DAY_S))


def dedupe(history: SwapHistory) -> SwapHistory:
    """Sort by ``(block_number, log_index)`` and drop repeats of identical events; a key that
    carries two different events is a :class:`HistoryError`."""
    if len(history) < 2:
        return history
    order = np.lexsort((history.log_index, history.block_number))
    blocks, logs = history.block_number[order], history.log_index[order]
    repeat = np.concatenate(([False], (blocks[1:] == blocks[:-1]) & (logs[1:] == logs[:-1])))
    big = [history.amount0, history.amount1, history.sqrt_price_x96, history.liquidity]
    for j in np.flatnonzero(repeat).tolist():
        a, b = int(order[j]), int(order[j - 1])
        same = all(col[a] == col[b] for col in big) and all(
            arr[a] == arr[b] for arr in (history.block_time, history.tick)
        )
        if not same:
            raise HistoryError(
                f"two different events under block {blocks[j]}, log index {logs[j]}: the "
                "sources disagree"
            )
    keep = order[~repeat]
    return SwapHistory(
        history.block_time[keep],
        history.block_number[keep],
        history.log_index[keep],
        history.tick[keep],
        [history.amount0[k] for k in keep.tolist()],
        [history.amount1[k] for k in keep.tolist()],
        [history.sqrt_price_x96[k] for k in keep.tolist()],
        [history.liquidity[k] for k in keep.tolist()],
    )


class HistoryStore:
    """``<data_dir>/history``: stored pages per pool (see the module docstring)."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.durable = durable

    def pool_dir(self, address: str) -> Path:
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", address):
            raise ValueError(f"not a 0x-prefixed 20-byte hex address: {address!r}")
        return self.root / address.lower()

    def page_path(self, address: str, day: int) -> Path:
        return self.pool_dir(address) / "pages" / f"{_day_name(day)}.parquet"

    def stored_days(self, address: str) -> list[int]:
        """Start of every stored day of the pool, oldest first."""
        folder = self.pool_dir(address) / "pages"
        if not folder.is_dir():
            return []
        days = []
        for path in folder.iterdir():
            match = _PAGE_NAME.match(path.name)
            if match:
                days.append(
                    int(datetime.strptime(match[1], "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
                )
        return sorted(days)

    def stored_pool(self, address: str) -> PoolSpec | None:
        """The pool description stored with the pages, if any."""
        path = self.pool_dir(address) / "pool.json"
        if not path.is_file():
            return None
        try:
            return PoolSpec(**orjson.loads(path.read_bytes()))
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise HistoryError(f"{path}: unreadable pool description: {exc}") from None

    def _remember_pool(self, pool: PoolSpec) -> None:
        stored = self.stored_pool(pool.address)
        if stored is not None:
            if stored != pool:
                raise HistoryError(
                    f"the stored history of {pool.address} describes another pool ({stored}); "
                    f"move {self.pool_dir(pool.address)} away to refetch"
                )
            return
        folder = self.pool_dir(pool.address)
        (folder / "pages").mkdir(parents=True, exist_ok=True)
        body = orjson.dumps(dataclasses.asdict(pool), option=orjson.OPT_INDENT_2) + b"\n"
        # Another process may write it first; the next call compares.
        with contextlib.suppress(ArtifactExistsError):
            write_new(folder / "pool.json", body, durable=self.durable)

    def store_page(self, pool: PoolSpec, day: int, page: SwapHistory) -> bool:
        """Write one complete day; ``False`` if it is already stored (pages never change)."""
        self._remember_pool(pool)
        outside = (page.block_time < day) | (page.block_time >= day + DAY_S)
        if outside.any():
            raise HistoryError(
                f"page {_day_name(day)} holds an event of {utc_text(page.block_time[outside][0])}"
            )
        try:
            write_new(
                self.page_path(pool.address, day), parquet_bytes(page, pool), durable=self.durable
            )
        except ArtifactExistsError:
            return False
        return True

    def read_page(self, address: str, day: int) -> SwapHistory:
        history, _ = read_history(self.page_path(address, day))
        return history

    def load(
        self, address: str, start_s: int, end_s: int, extra: Sequence[SwapHistory] = ()
    ) -> SwapHistory:
        """Stored events (plus ``extra`` pages) with ``start_s <= block_time <= end_s``,
        de-duplicated and checked."""
        wanted = set(days_covering(start_s, end_s))
        parts = [self.read_page(address, d) for d in self.stored_days(address) if d in wanted]
        merged = dedupe(concat_histories([*parts, *extra]))
        check_history(merged)
        return merged.between(start_s, end_s + 1) if len(merged) else empty_history()

    async def fetch(
        self,
        pool: PoolSpec,
        start_s: int,
        end_s: int,
        source: PageSource,
        now_s: int,
        settle_s: int = SETTLE_S,
    ) -> tuple[SwapHistory, FetchReport]:
        """Make sure every day of ``[start_s, end_s]`` is here, fetching missing days from
        ``source`` one at a time; return the window's events and what was done.

        A day is stored once it ended ``settle_s`` before ``now_s``; later days are fetched
        and used but not stored, days from ``now_s`` on are not asked for. A file is its own
        clock: pass its last event's time + 1 and ``settle_s=0``.
        """
        stored = set(await asyncio.to_thread(self.stored_days, pool.address))
        fetched = present = open_days = 0
        held: list[SwapHistory] = []
        for day in days_covering(start_s, end_s):
            if day in stored:
                present += 1
                continue
            if day >= now_s:
                continue  # a day that has not begun has no events yet
            page = await source.fetch_page(pool, day, day + DAY_S)
            if day + DAY_S + settle_s <= now_s:
                fetched += await asyncio.to_thread(self.store_page, pool, day, page)
            else:
                open_days += 1
                held.append(page)
        history = await asyncio.to_thread(self.load, pool.address, start_s, end_s, held)
        return history, FetchReport(fetched, present, open_days, len(history))
