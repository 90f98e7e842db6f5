"""Command-line arguments of ``clmmd backtest`` and ``clmmd history`` (argparse only: the
``clmmd`` entry point imports this for every command, so nothing heavy is imported here)."""

from __future__ import annotations

import argparse
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def parse_time(text: str) -> int:
    """Unix seconds from ``2024-05-01``, ``2024-05-01T12:00:00Z`` (any ISO-8601 with a zone,
    or none for UTC) or plain Unix seconds; ``argparse.ArgumentTypeError`` otherwise."""
    value = text.strip()
    if re.fullmatch(r"\d+", value):
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time (2024-05-01T00:00:00Z) or Unix seconds, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _finite_positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _liquidity(text: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()) or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer liquidity, got {text!r}")
    return int(text)


def _fee_protocol(text: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()) or not (int(text) == 0 or 4 <= int(text) <= 10):
        raise argparse.ArgumentTypeError(f"expected 0 or 4..10, got {text!r}")
    return int(text)


def add_parsers(sub: Any, parents: list[argparse.ArgumentParser] | None = None) -> None:
    """Register ``backtest`` and ``history`` on the ``clmmd`` command line (``sub``: the
    subcommands of ``clmmd``; ``parents``: the global options, for the nested commands)."""
    bt = sub.add_parser("backtest", help="one range position on a pool's real Swap history")
    bt.add_argument("--history", type=Path, metavar="FILE", help="CSV or Parquet Swap history")
    bt.add_argument(
        "--pool",
        metavar="ADDRESS",
        help="the pool (its history stored in the data dir; or names the pool of a CSV file)",
    )
    bt.add_argument("--from", dest="start", type=parse_time, required=True, metavar="T0")
    bt.add_argument("--to", dest="end", type=parse_time, required=True, metavar="T1")
    bt.add_argument("--lower-tick", type=int, metavar="A")
    bt.add_argument("--upper-tick", type=int, metavar="B")
    bt.add_argument(
        "--width-pct",
        type=_finite_positive,
        metavar="W",
        help="instead of ticks: the price at --from ± W %%, widened to the tick spacing",
    )
    size = bt.add_mutually_exclusive_group(required=True)
    size.add_argument("--size-usd", type=_finite_positive, metavar="S", help="deposit in USD")
    size.add_argument("--liquidity", type=_liquidity, metavar="L", help="exact liquidity")
    bt.add_argument(
        "--position-in-history",
        action="store_true",
        help="the history already contains this position (audit a real one) instead of adding it",
    )
    bt.add_argument(
        "--gas-price-gwei",
        type=float,
        help="gas price for one mint, burn and collect (default: the mock simulator's)",
    )
    bt.add_argument(
        "--eth-price-usd",
        type=_finite_positive,
        help="ETH price for gas when the pool's volatile token is not WETH",
    )
    bt.add_argument(
        "--fee-protocol",
        type=_fee_protocol,
        default=0,
        help="the pool's protocol fee switch: 0 off, N in 4..10 = 1/N of fees",
    )
    bt.add_argument("--method", choices=["exact", "vector"], default="exact")

    hist = sub.add_parser("history", help="Swap histories stored for the replay market")
    hist_sub = hist.add_subparsers(dest="history_command", required=True, parser_class=type(hist))
    nested = {"parents": parents or []}
    imp = hist_sub.add_parser(
        "import", help="store a CSV/Parquet Swap history, by UTC day", **nested
    )
    imp.add_argument("file", type=Path)
    imp.add_argument("--pool", metavar="ADDRESS", help="the pool, if the file does not say")
    fetch = hist_sub.add_parser(
        "fetch", help="fetch missing days from Dune (DUNE_API_KEY)", **nested
    )
    fetch.add_argument("--pool", required=True, metavar="ADDRESS")
    fetch.add_argument("--from", dest="start", type=parse_time, required=True, metavar="T0")
    fetch.add_argument("--to", dest="end", type=parse_time, required=True, metavar="T1")
    hist_sub.add_parser("list", help="stored pools and days", **nested)
