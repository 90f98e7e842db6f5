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
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from clmmd.artifacts.base.clock import SystemClock
from clmmd.env.base import PoolSpec, pool_by_address
from clmmd.env.history import HistoryError, SwapHistory, utc_text
from clmmd.env.history_io import read_history
from clmmd.env.history_store import DAY_S, FileSource, HistoryStore, PageSource, days_covering
from clmmd.env.mock import DEFAULT_GAS_PRICE_GWEI, GAS_UNITS_PER_EPISODE, gas_cost_usd
from clmmd.env.pricing import usd_range_to_ticks
from clmmd.env.replay import ReplayMarket, ReplayMethod
from clmmd.env.replay_fees import LpPosition
from clmmd.service.config import ConfigError, Settings
from clmmd.service.logging import configure_logging
from clmmd.service.market import history_store

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


def _pool(address: str) -> PoolSpec:
    try:
        return pool_by_address(address)
    except KeyError:
        raise ValueError(
            f"--pool {address}: unknown pool (a history file written by clmmd names its pool)"
        ) from None


def history_for(
    request: BacktestRequest, settings: Settings, source: PageSource | None
) -> tuple[SwapHistory, PoolSpec]:
    """The history to replay and its pool: the file, or the stored pages (plus what
    ``source`` fetches for the days missing), from the day before ``--from``."""
    if request.history_file is not None:
        history, described = read_history(request.history_file)
        if request.pool_address is not None:
            pool = _pool(request.pool_address) if described is None else described
            if pool.address.lower() != request.pool_address.lower():
                raise ValueError(
                    f"--pool {request.pool_address}: {request.history_file} is the history of "
                    f"{pool.address}"
                )
        elif described is None:
            raise ValueError(f"{request.history_file} does not name its pool: add --pool ADDRESS")
        else:
            pool = described
        return history, pool
    assert request.pool_address is not None
    pool = _pool(request.pool_address)
    store = history_store(settings)
    # The day before --from too: the opening price is the last swap at or before --from.
    first = request.start - DAY_S
    now = int(SystemClock().now().timestamp())
    if source is None:
        stored = set(store.stored_days(pool.address))
        missing = [
            d for d in days_covering(request.start, request.end) if d not in stored and d < now
        ]
        if missing:
            raise ValueError(
                f"--pool {pool.address}: {len(missing)} day(s) from {utc_text(missing[0])} are "
                f"not in {store.root} and no history source is configured (DUNE_API_KEY): run "
                "`clmmd history fetch` or pass --history FILE"
            )
        return store.load(pool.address, first, request.end), pool
    history, _ = asyncio.run(store.fetch(pool, first, request.end, source, now))
    return history, pool


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
    """``clmmd backtest``: print the position's JSON object; exit 2 on bad input."""
    configure_logging("warning")
    request = BacktestRequest.from_args(args)
    try:
        request.check()
        source = network_source(settings) if request.history_file is None else None
        history, pool = history_for(request, settings, source)
        summary = run_backtest(request, history, pool)
    except (HistoryError, ValueError) as exc:
        return _fail("backtest", str(exc))
    print(json.dumps(summary, indent=2))
    return 0


def network_source(settings: Settings) -> PageSource | None:
    """The page source for days the store lacks (Dune when a key is set), else ``None``."""
    if settings.dune_api_key is None:
        return None
    raise ConfigError(
        "invalid configuration: fetching Swap history from Dune is not available in this build; "
        "pass --history FILE or `clmmd history import FILE`"
    )


def history_command(settings: Settings, args: argparse.Namespace) -> int:
    """``clmmd history import|fetch|list``."""
    configure_logging("warning")
    store = history_store(settings)
    try:
        if args.history_command == "list":
            return _list(store)
        if args.history_command == "import":
            source = FileSource(args.file)
            history = source.load()
            pool = source.pool
            if args.pool is not None:
                named = _pool(args.pool) if pool is None else pool
                if named.address.lower() != args.pool.lower():
                    raise ValueError(f"--pool {args.pool}: {args.file} is {named.address}'s")
                pool = named
            if pool is None:
                raise ValueError(f"{args.file} does not name its pool: add --pool ADDRESS")
            if len(history) == 0:
                raise ValueError(f"{args.file} holds no swaps")
            start, end = int(history.block_time[0]), int(history.block_time[-1])
            page_source: PageSource = source
        else:
            pool = _pool(args.pool)
            start, end = args.start, args.end
            if end <= start:
                raise ValueError(f"--to {utc_text(end)} is not after --from {utc_text(start)}")
            found = network_source(settings)
            if found is None:
                raise ConfigError(
                    "invalid configuration: DUNE_API_KEY is NOT SET: `clmmd history fetch` "
                    "reads Swap events from Dune"
                )
            page_source = found
        now = int(SystemClock().now().timestamp())
        history, report = asyncio.run(store.fetch(pool, start, end, page_source, now))
    except (HistoryError, ValueError) as exc:
        return _fail("history", str(exc))
    print(
        f"{pool.address}: {report.pages_stored} day(s) stored, {report.pages_present} already "
        f"there, {report.pages_open} not over yet (not stored); {report.swaps} swaps from "
        f"{utc_text(start)} to {utc_text(end)} in {store.pool_dir(pool.address)}"
    )
    return 0


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
