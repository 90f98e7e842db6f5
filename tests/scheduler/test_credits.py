"""Credits: the pure budget rule, the ledger's UTC day, and the costs the client records."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.artifacts.base.clock import FakeClock
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.credits import (
    BudgetItem,
    CreditLedger,
    apply_budget,
    execution_credits,
    export_credits,
)
from clmmd.scheduler.dune import DuneClient
from clmmd.scheduler.registry import PRIORITIES
from tests.fakes.dune_server import FakeDuneServer

KEY = "fake-credits-key-000000000000"


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[IntelCache]:
    c = IntelCache(tmp_path / "cache")
    yield c
    c.close()


def items(*specs: tuple[str, str, float]) -> list[BudgetItem]:
    return [BudgetItem(key, priority, estimate) for key, priority, estimate in specs]


def test_budget_admits_high_priorities_and_skips_lower_ones_with_a_reason() -> None:
    planned = items(
        ("gas", "P0", 10),
        ("health", "P0", 10),
        ("fee", "P1", 10),
        ("mev", "P2", 10),
        ("tiny", "P3", 0.1),
    )
    admitted, skipped = apply_budget(planned, 30)
    assert [i.key for i in admitted] == ["gas", "health", "fee"]
    assert set(skipped) == {"mev", "tiny"}
    assert "needs ~10.0 credits, 0.0 left" in skipped["mev"]
    # A small P3 does not sneak in after a P2 was refused: lower priorities go first.
    assert "P3 skipped after a P2 fetch did not fit" in skipped["tiny"]
    assert apply_budget(planned, None) == (planned, {})


@given(
    st.lists(st.tuples(st.sampled_from(PRIORITIES), st.floats(0, 50)), min_size=0, max_size=30),
    st.floats(0, 400),
)
def test_budget_never_overspends_and_never_skips_a_higher_priority_for_a_lower_one(
    specs: list[tuple[str, float]], remaining: float
) -> None:
    planned = [BudgetItem(f"k{n}", p, e) for n, (p, e) in enumerate(specs)]
    admitted, skipped = apply_budget(planned, remaining)
    assert sum(i.estimate for i in admitted) <= remaining + 1e-9
    assert {i.key for i in admitted} | set(skipped) == {i.key for i in planned}
    if skipped and admitted:
        worst_admitted = max(PRIORITIES.index(i.priority) for i in admitted)
        best_skipped = min(PRIORITIES.index(i.priority) for i in planned if i.key in skipped)
        # Anything admitted below the best skipped priority would be a lower one jumping ahead.
        assert worst_admitted <= best_skipped


def test_costs_use_dunes_figure_else_the_engine_price() -> None:
    assert execution_credits(3.25, "medium") == (3.25, False)
    assert execution_credits(None, "medium") == (10.0, True)
    assert execution_credits("7", "large") == (20.0, True)
    assert export_credits(1_000_000, 20.0) == 20.0


async def test_daily_total_rolls_over_at_utc_midnight(cache: IntelCache) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC))
    ledger = CreditLedger(cache, clock, budget_per_day=50)
    await ledger.charge(30, kind="execution", estimated=False, label="a")
    await ledger.charge(5, kind="read", estimated=True, label="a")
    assert ledger.today()["used"] == 35 and ledger.remaining() == 15
    ledger.reserve("k", 10)
    assert ledger.remaining() == 5
    ledger.release("k")
    clock.advance(60)  # 00:00 UTC
    assert ledger.today() == {
        "date": "2026-03-02",
        "used": 0.0,
        "executions": 0,
        "reads": 0,
        "estimated": 0.0,
    }
    assert ledger.remaining() == 50
    # Another process (clmmd status) reads the same totals from the cache.
    other = CreditLedger(cache, FakeClock(datetime(2026, 3, 1, 12, tzinfo=UTC)), None)
    assert other.status()["used"] == 35 and other.status()["remaining"] is None


@pytest.fixture
async def server() -> AsyncIterator[FakeDuneServer]:
    async with FakeDuneServer(KEY) as srv:
        yield srv


async def test_client_charges_each_execution_and_each_page_read(
    server: FakeDuneServer, cache: IntelCache
) -> None:
    clock = FakeClock()
    ledger = CreditLedger(cache, clock, None)
    server.sql_rows = lambda _sql: [{"n": i} for i in range(10)]
    server.sql_script.cost_credits = None  # Dune gave no figure: the engine price is used
    client = DuneClient(
        server.base_url,
        KEY,
        clock,
        rng=random.Random(0),
        page_size=4,
        credit_sink=ledger,
        credits_per_mb=20_000.0,
    )
    try:
        data = await client.execute_sql("SELECT 1 AS n")
    finally:
        await client.close()
    today = ledger.today()
    assert (today["executions"], today["reads"]) == (1, 3)  # pages of 4, 4, 2 rows
    # 640 bytes of results at 20 000 credits/MB = 12.8 credits, split by the pages' rows.
    assert today["used"] == pytest.approx(10 + 12.8, abs=0.05)
    assert data["credits"] == pytest.approx(today["used"], abs=1e-6)
    assert today["estimated"] == pytest.approx(today["used"])


async def test_a_failed_execution_is_charged(server: FakeDuneServer, cache: IntelCache) -> None:
    clock = FakeClock()
    ledger = CreditLedger(cache, clock, None)
    server.sql_script.final_state = "QUERY_STATE_FAILED"
    client = DuneClient(server.base_url, KEY, clock, rng=random.Random(0), credit_sink=ledger)
    try:
        with pytest.raises(Exception, match="failed"):
            await client.execute_sql("SELECT 1 AS n")
    finally:
        await client.close()
    # The fake reports execution_cost_credits=3.5 on the failed status: that is what is charged.
    assert ledger.today()["executions"] == 1 and ledger.today()["used"] == 3.5


def test_midnight_helper_is_utc() -> None:
    from clmmd.scheduler.credits import day_of

    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert day_of(late) == "2026-03-01"
    assert day_of(late.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))) == "2026-03-01"
    assert day_of(late + timedelta(minutes=30)) == "2026-03-02"
