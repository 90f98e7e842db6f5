"""``clmmd backtest`` and ``clmmd history``: one range position on a pool's real Swap history.

``clmmd backtest`` replays a window of history (a file, or the pages stored in the data dir)
for one position and prints one JSON object: liquidity and ticks, fees per token and in USD,
time in range, values at the start and the end, impermanent loss and the PnL decomposition
``PnL = HODL return − IL + fees − gas`` (fields documented in docs/replay.md). Bad input (a
file that is unsorted, has duplicated events or missing columns, ticks off the spacing, an
empty window, ...) is one line on stderr naming the problem, exit status 2.

``clmmd history import|fetch|list`` fill and show the store the replay market reads
(``<data_dir>/history``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from clmmd.artifacts.base.clock import SystemClock
from clmmd.env.base import PoolSpec, pool_by_address
from clmmd.env.history import HistoryError, SwapHistory, utc_text
from clmmd.env.history_io import read_history
from clmmd.env.history_store import (
    DAY_S,
    FetchReport,
    FileSource,
    HistoryStore,
    PageSource,
    days_covering,
)
from clmmd.env.mock import DEFAULT_GAS_PRICE_GWEI, GAS_UNITS_PER_EPISODE, gas_cost_usd
from clmmd.env.pricing import usd_range_to_ticks
from clmmd.env.replay import ReplayMarket, ReplayMethod
from clmmd.env.replay_fees import LpPosition
from clmmd.scheduler.dune_errors import DuneError
from clmmd.scheduler.history_source import CreditBudgetSpent, DuneHistorySource
from clmmd.service.config import ConfigError, Settings
from clmmd.service.market import history_store
from clmmd.service.wiring import dune_client, open_intel

#: Failures of a fetch that are not the user's input: exit status 1.
FETCH_ERRORS = (DuneError, CreditBudgetSpent, OSError)

EXIT_USAGE = 2


@dataclass(frozen=True)
class BacktestRequest:
    """What ``clmmd backtest`` was asked (after argument parsing)."""

    start: int
    end: int
    history_file: Path | None = None
    pool_address: str | None = None
    tick_lower: int | None = None
    tick_upper: int | None = None
    width_pct: float | None = None
    size_usd: float | None = None
    liquidity: int | None = None
    position_in_history: bool = False
    gas_price_gwei: float = DEFAULT_GAS_PRICE_GWEI
    eth_price_usd: float | None = None
    fee_protocol: int = 0
    method: ReplayMethod = "exact"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BacktestRequest:
        return cls(
            start=args.start,
            end=args.end,
            history_file=args.history,
            pool_address=args.pool,
            tick_lower=args.lower_tick,
            tick_upper=args.upper_tick,
            width_pct=args.width_pct,
            size_usd=args.size_usd,
            liquidity=args.liquidity,
            position_in_history=args.position_in_history,
            gas_price_gwei=(
                DEFAULT_GAS_PRICE_GWEI if args.gas_price_gwei is None else args.gas_price_gwei
            ),
            eth_price_usd=args.eth_price_usd,
            fee_protocol=args.fee_protocol,
            method=args.method,
        )

    def check(self) -> None:
        """``ValueError`` naming the option for combinations argparse cannot express."""
        if self.history_file is None and self.pool_address is None:
            raise ValueError("give --history FILE or --pool ADDRESS")
        ticks = (self.tick_lower is not None, self.tick_upper is not None)
        if self.width_pct is not None and any(ticks):
            raise ValueError("give either --lower-tick/--upper-tick or --width-pct, not both")
        if self.width_pct is None and not all(ticks):
            raise ValueError("give --lower-tick A --upper-tick B, or --width-pct W")
        if self.width_pct is not None and not self.width_pct < 100:
            raise ValueError(f"--width-pct={self.width_pct:g} must be below 100")
        if not (math.isfinite(self.gas_price_gwei) and self.gas_price_gwei >= 0):
            raise ValueError(f"--gas-price-gwei={self.gas_price_gwei!r} must be >= 0")
        if self.end <= self.start:
            raise ValueError(
                f"empty window: --to {utc_text(self.end)} is not after "
                f"--from {utc_text(self.start)}"
            )


def _pool(address: str, store: HistoryStore | None = None) -> PoolSpec:
    """The pool ``--pool`` names: as described in the store (imported with its history), else
    one clmmd knows."""
    try:
        described = store.stored_pool(address) if store is not None else None
        return described or pool_by_address(address)
    except KeyError:
        raise ValueError(
            f"--pool {address}: unknown pool (import a history file that names it first)"
        ) from None


@contextlib.asynccontextmanager
async def dune_history(settings: Settings) -> AsyncIterator[PageSource]:
    """Dune as the page source, charging the daily credit ledger the refreshes use."""
    from clmmd.scheduler.credits import CreditLedger

    clock = SystemClock()
    stack = await asyncio.to_thread(open_intel, settings, clock)
    ledger = CreditLedger(stack.cache, clock, settings.dune_credit_budget_per_day)
    source = DuneHistorySource(
        dune_client(settings, clock, ledger), ledger, settings.refresh_deadline_s
    )
    try:
        yield source
    finally:
        await source.close()
        await asyncio.to_thread(stack.close)


async def load_history(
    request: BacktestRequest, settings: Settings
) -> tuple[SwapHistory, PoolSpec]:
    """The history to replay and its pool: the file, or the stored pages from the day before
    ``--from`` (the opening price is the last swap at or before it), fetching the days the
    store lacks from Dune when a key is set."""
    if request.history_file is not None:
        history, described = await asyncio.to_thread(read_history, request.history_file)
        return history, _file_pool(request.history_file, described, request.pool_address)
    assert request.pool_address is not None
    store = history_store(settings)
    pool = _pool(request.pool_address, store)
    first, now = request.start - DAY_S, int(SystemClock().now().timestamp())
    if settings.dune_api_key is not None:
        async with dune_history(settings) as source:
            history, _ = await store.fetch(pool, first, request.end, source, now)
        return history, pool
    stored = set(await asyncio.to_thread(store.stored_days, pool.address))
    missing = [d for d in days_covering(request.start, request.end) if d not in stored and d < now]
    if missing:
        raise ValueError(
            f"--pool {pool.address}: {len(missing)} day(s) from {utc_text(missing[0])} are not "
            f"in {store.root} and DUNE_API_KEY is NOT SET to fetch them: run `clmmd history "
            "fetch` with a key, or pass --history FILE"
        )
    return await asyncio.to_thread(store.load, pool.address, first, request.end), pool


def _file_pool(path: Path, described: PoolSpec | None, named: str | None) -> PoolSpec:
    """The pool of a history file: what it says, checked against ``--pool`` if given."""
    if named is None:
        if described is None:
            raise ValueError(f"{path} does not name its pool: add --pool ADDRESS")
        return described
    pool = _pool(named) if described is None else described
    if pool.address.lower() != named.lower():
        raise ValueError(f"--pool {named}: {path} is the history of {pool.address}")
    return pool


def run_backtest(
    request: BacktestRequest, history: SwapHistory, pool: PoolSpec
) -> dict[str, object]:
    """The backtest's JSON object (pure: everything comes in)."""
    market = ReplayMarket(history, pool, (request.fee_protocol, request.fee_protocol))
    window = market.window(request.start, request.end)
    if request.width_pct is not None:
        price = market.price_usd(window.start)
        share = request.width_pct / 100.0
        lower, upper = usd_range_to_ticks(pool, price * (1 - share), price * (1 + share))
    else:
        assert request.tick_lower is not None and request.tick_upper is not None
        lower, upper = request.tick_lower, request.tick_upper
    market.check_ticks(lower, upper)
    if request.liquidity is not None:
        liquidity = request.liquidity
    else:
        assert request.size_usd is not None
        liquidity = market.liquidity_for_size(window, lower, upper, request.size_usd)
    eth_price = market.eth_price_usd(
        window.start,
        request.eth_price_usd if request.eth_price_usd is not None else pool.reference_price_usd,
    )
    gas = gas_cost_usd(request.gas_price_gwei, eth_price)
    position = LpPosition(lower, upper, liquidity, in_history=request.position_in_history)
    result = market.evaluate(position, window, gas_cost_usd=gas, method=request.method)
    summary = result.to_json()
    summary["gas_price_gwei"] = request.gas_price_gwei
    summary["gas_units"] = GAS_UNITS_PER_EPISODE
    if request.size_usd is not None:
        summary["size_usd"] = request.size_usd
    return summary


def _fail(command: str, message: str) -> int:
    print(f"clmmd {command}: {message}", file=sys.stderr)
    return EXIT_USAGE


def backtest(settings: Settings, args: argparse.Namespace) -> int:
    """``clmmd backtest``: print the position's JSON object; exit 2 on bad input, 1 when the
    history could not be fetched."""
    request = BacktestRequest.from_args(args)
    try:
        request.check()
        history, pool = asyncio.run(load_history(request, settings))
        summary = run_backtest(request, history, pool)
    except (HistoryError, ValueError) as exc:
        return _fail("backtest", str(exc))
    except FETCH_ERRORS as exc:
        print(f"clmmd backtest: fetching the history failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def history_command(settings: Settings, args: argparse.Namespace) -> int:
    """``clmmd history import|fetch|list``."""
    store = history_store(settings)
    if args.history_command == "list":
        return _list(store)
    try:
        pool, start, end, report = asyncio.run(_fill_store(settings, store, args))
    except (HistoryError, ValueError) as exc:
        return _fail("history", str(exc))
    except FETCH_ERRORS as exc:
        print(f"clmmd history: fetching failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"{pool.address}: {report.pages_stored} day(s) stored, {report.pages_present} already "
        f"there, {report.pages_open} not over yet (not stored); {report.swaps} swaps from "
        f"{utc_text(start)} to {utc_text(end)} in {store.pool_dir(pool.address)}"
    )
    return 0


async def _fill_store(
    settings: Settings, store: HistoryStore, args: argparse.Namespace
) -> tuple[PoolSpec, int, int, FetchReport]:
    if args.history_command == "import":
        source = FileSource(args.file)
        history = await asyncio.to_thread(source.load)
        pool = _file_pool(args.file, source.pool, args.pool)
        if len(history) == 0:
            raise ValueError(f"{args.file} holds no swaps")
        start, end = int(history.block_time[0]), int(history.block_time[-1])
        # The file is complete up to its last event: every day that ended by then is stored.
        _, report = await store.fetch(pool, start, end, source, end + 1, settle_s=0)
        return pool, start, end, report
    pool, start, end = _pool(args.pool, store), args.start, args.end
    now = int(SystemClock().now().timestamp())
    if end <= start:
        raise ValueError(f"--to {utc_text(end)} is not after --from {utc_text(start)}")
    if settings.dune_api_key is None:
        raise ConfigError(
            "invalid configuration: DUNE_API_KEY is NOT SET: `clmmd history fetch` reads Swap "
            "events from Dune"
        )
    async with dune_history(settings) as dune:
        _, report = await store.fetch(pool, start, end, dune, now)
    return pool, start, end, report


def _list(store: HistoryStore) -> int:
    if not store.root.is_dir():
        print(f"no stored history in {store.root}")
        return 0
    for folder in sorted(p for p in store.root.iterdir() if p.is_dir()):
        days = store.stored_days(folder.name)
        if days:
            print(
                f"{folder.name}  {len(days)} day(s)  {utc_text(days[0])[:10]} .. "
                f"{utc_text(days[-1])[:10]}"
            )
    return 0
