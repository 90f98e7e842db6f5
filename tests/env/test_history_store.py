"""env.history_store: day pages, resumable fetching, de-duplication by (block, log index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clmmd.env.base import KNOWN_POOLS, PoolSpec
from clmmd.env.history import HistoryError, SwapHistory, concat_histories
from clmmd.env.history_io import parquet_bytes
from clmmd.env.history_store import (
    DAY_S,
    SETTLE_S,
    FileSource,
    HistoryStore,
    dedupe,
)
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history

POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]
DAY0 = 1_714_521_600  # 2024-05-01T00:00:00Z


@pytest.fixture(scope="module")
def three_days() -> SwapHistory:
    return synthetic_history(POOL, SyntheticMarket(swaps=3000, seconds_per_swap=80.0, seed=5))


class CountingSource:
    """A page source that remembers what it was asked and can fail on a chosen day."""

    def __init__(self, history: SwapHistory, fail_on: int | None = None) -> None:
        self.history = history
        self.asked: list[int] = []
        self.fail_on = fail_on

    @property
    def name(self) -> str:
        return "counting"

    async def fetch_page(self, pool: PoolSpec, start_s: int, end_s: int) -> SwapHistory:
        self.asked.append(start_s)
        if start_s == self.fail_on:
            raise ConnectionError("source went away")
        return self.history.between(start_s, end_s)


async def test_fetch_stores_settled_days_and_resumes_where_it_stopped(
    tmp_path: Path, three_days: SwapHistory
) -> None:
    store = HistoryStore(tmp_path / "history", durable=False)
    now = DAY0 + 4 * DAY_S
    failing = CountingSource(three_days, fail_on=DAY0 + 2 * DAY_S)
    with pytest.raises(ConnectionError):
        await store.fetch(POOL, DAY0, DAY0 + 3 * DAY_S - 1, failing, now)
    assert store.stored_days(POOL.address) == [DAY0, DAY0 + DAY_S]
    source = CountingSource(three_days)
    history, report = await store.fetch(POOL, DAY0, DAY0 + 3 * DAY_S - 1, source, now)
    assert source.asked == [DAY0 + 2 * DAY_S]  # only the day that was missing
    assert (report.pages_stored, report.pages_present, report.pages_open) == (1, 2, 0)
    assert history.amount0 == three_days.between(DAY0, DAY0 + 3 * DAY_S).amount0
    assert store.stored_pool(POOL.address) == POOL
    assert (tmp_path / "history" / POOL.address.lower() / "pages" / "2024-05-03.parquet").is_file()


async def test_a_day_not_yet_settled_is_used_but_not_stored(
    tmp_path: Path, three_days: SwapHistory
) -> None:
    store = HistoryStore(tmp_path / "history", durable=False)
    now = DAY0 + 3 * DAY_S + SETTLE_S - 1  # day 3 ended, but not long enough ago
    source = CountingSource(three_days)
    history, report = await store.fetch(POOL, DAY0 + 2 * DAY_S, now, source, now)
    assert report.pages_open == 2 and report.pages_stored == 0  # day 3 and the day now in
    assert len(history) == len(three_days.between(DAY0 + 2 * DAY_S, now + 1))
    assert store.stored_days(POOL.address) == []


def test_dedupe_drops_repeats_and_refuses_conflicts(three_days: SwapHistory) -> None:
    part = three_days.rows(0, 50)
    doubled = concat_histories([part.rows(10, 50), part.rows(0, 20)])
    assert dedupe(doubled).amount0 == part.amount0
    forged = SwapHistory(
        part.block_time[:2],
        part.block_number[[0, 0]],
        part.log_index[[0, 0]],
        part.tick[:2],
        [part.amount0[0], part.amount0[0] + 1],
        part.amount1[:1] * 2,
        part.sqrt_price_x96[:1] * 2,
        part.liquidity[:1] * 2,
    )
    with pytest.raises(HistoryError, match="two different events under block"):
        dedupe(forged)


async def test_file_source_fills_the_store(tmp_path: Path, three_days: SwapHistory) -> None:
    path = tmp_path / "user.parquet"
    path.write_bytes(parquet_bytes(three_days, POOL))
    store = HistoryStore(tmp_path / "history", durable=False)
    source = FileSource(path)
    history, report = await store.fetch(POOL, DAY0, DAY0 + 3 * DAY_S - 1, source, DAY0 + 10 * DAY_S)
    assert source.pool == POOL
    assert report.pages_stored == 3 and len(history) == len(three_days)


def test_a_stored_pool_that_differs_is_an_error(tmp_path: Path, three_days: SwapHistory) -> None:
    store = HistoryStore(tmp_path / "history", durable=False)
    store.store_page(POOL, DAY0, three_days.between(DAY0, DAY0 + DAY_S))
    assert not store.store_page(POOL, DAY0, three_days.between(DAY0, DAY0 + DAY_S))
    other = PoolSpec(**{**POOL.__dict__, "decimals0": 18})
    with pytest.raises(HistoryError, match="describes another pool"):
        store.store_page(other, DAY0 + DAY_S, three_days.between(DAY0 + DAY_S, DAY0 + 2 * DAY_S))
    with pytest.raises(HistoryError, match="holds an event of"):
        store.store_page(POOL, DAY0 + DAY_S, three_days.between(DAY0, DAY0 + 2 * DAY_S))
