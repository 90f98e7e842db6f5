"""The ``clmmd`` command line (argument parsing; what each command does is in ``commands``).

Exit status: 0 success, 1 the command ran but its outcome is bad (validation violations,
nothing refreshed), 2 bad input (arguments or configuration: one line naming field and value).
Where output and log lines go (a terminal, a pipe, journald) is decided in ``console``.

The global options (``--data-dir``, ``--log-format``, ``-v``) are accepted before or after the
subcommand: every subparser gets them through a parent parser whose defaults are suppressed, so
a value given anywhere lands in the namespace and an absent one does not overwrite it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from clmmd.service.cli import backtest_args
from clmmd.service.cli.console import LOG_FORMATS, Console
from clmmd.service.config import ConfigError, Settings, load_settings
from clmmd.service.datadir_lock import DataDirBusy, DataDirUnusable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's default prints the whole usage block; operators want one line.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _workers(text: str) -> int:
    value = _positive_int(text)
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError(f"expected 1..16 workers, got {text!r}")
    return value


DESCRIPTION = (
    "clmmd trains a Uniswap V3 liquidity-provision agent: a daemon (refresh scheduler, trigger "
    "watcher, episode workers), one-shot campaigns, and tools to inspect, report and evaluate "
    "runs."
)
EPILOG = (
    "Global options work before or after the command (clmmd campaign --data-dir X). "
    "Configuration comes from environment variables, .env or CLMMD_CONFIG_FILE (see "
    "docs/configuration.md). Exit status: 0 ok, 1 the command ran but the outcome is bad, "
    "2 bad input."
)


RUN_HELP = "a run id, or latest (the default)"


def _global_options() -> _Parser:
    """The options every (sub)command accepts, on either side of the subcommand."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("global options")
    group.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="data directory (default ./data, or CLMMD_DATA_DIR)",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=argparse.SUPPRESS,
        help="auto (default): on a terminal a progress bar and text, log lines to the log "
        "file; elsewhere JSON lines. json: JSON log lines as off a terminal. human: text even "
        "when piped",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="also show log lines on stderr (-vv: debug level)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = _Parser(prog="clmmd", description=DESCRIPTION, epilog=EPILOG, parents=[common])
    sub = _Subcommands(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    sub.parents = [common]

    run = sub.add_parser("run", help="the daemon: refresh scheduler, triggers, episode workers")
    run.add_argument(
        "--once",
        action="store_true",
        help="drain triggers, one refresh tick, run queued episodes, exit",
    )
    run.add_argument("--workers", type=_workers, help="concurrent fetches (CLMMD_REFRESH_WORKERS)")
    run.add_argument("--pool-cap", type=_positive_int, help="active pools (CLMMD_POOL_CAP)")

    camp = sub.add_parser("campaign", help="run N mock/real episodes once and exit")
    camp.add_argument("--episodes", type=_positive_int, help="episodes to run (EPISODES)")
    camp.add_argument("--seed", type=int, help="campaign seed (HB_SEED)")
    camp.add_argument("--workers", type=_workers, help="concurrent episodes")
    camp.add_argument(
        "--cold",
        action="store_true",
        help="do not warm the intel cache first (mock intel source only)",
    )

    runs = sub.add_parser("runs", help="list, show or validate runs")
    runs_sub = _Subcommands(runs.add_subparsers(dest="runs_command", parser_class=_Parser), common)
    runs_sub.add_parser("list", help="one line per run")
    show = runs_sub.add_parser("show", help="summary and episodes of a run")
    show.add_argument("run", nargs="?", default="latest", help=RUN_HELP)
    val = runs_sub.add_parser("validate", help="check every artifact invariant of a run")
    val.add_argument("run", nargs="?", default="latest", help=RUN_HELP)
    val.add_argument("--all", action="store_true", help="validate every run")

    rep = sub.add_parser("report", help="HTML report with plots (and the plots as PNG)")
    rep.add_argument("run", nargs="?", default="latest", help=RUN_HELP)
    rep.add_argument("--out", type=Path, help="output folder (default <run>/report/)")

    clean = sub.add_parser("clean", help="remove all but the newest N runs")
    clean.add_argument("--keep", type=_non_negative_int, required=True, help="runs to keep")
    clean.add_argument("--dry-run", action="store_true", help="show what would be removed")

    ev = sub.add_parser("evaluate", help="learned policy vs a static range on the same paths")
    ev.add_argument("--episodes", type=_positive_int, required=True, help="episodes to compare")
    ev.add_argument(
        "--seed", type=int, required=True, help="campaign seed whose price paths are replayed"
    )
    ev.add_argument(
        "--baseline-pct",
        type=_positive_float,
        default=5.0,
        help="the static baseline range, ± this %% around the price (default 5)",
    )
    ev.add_argument(
        "--train",
        type=_positive_int,
        metavar="N",
        help="first train on N mock episodes (LEARN_FROM_MOCK) into the saved state",
    )

    ex = sub.add_parser("export", help="episodes for offline RL: JSONL windows or Minari")
    ex.add_argument(
        "--format",
        choices=["jsonl", "minari"],
        default="jsonl",
        help="jsonl: one line per time window; minari: a Minari dataset (rl extra)",
    )
    ex.add_argument("--window", help="window length, e.g. 15m, 1h, 1d (jsonl)")
    ex.add_argument(
        "--run",
        action="append",
        dest="runs",
        metavar="RUN",
        help="a run to export (repeatable; default: every run)",
    )
    ex.add_argument(
        "--out",
        type=Path,
        help="output JSONL file (jsonl); Minari datasets folder (minari, default "
        "$MINARI_DATASETS_PATH or ~/.minari/datasets)",
    )
    ex.add_argument(
        "--dataset-id",
        default="clmmd/uniswapv3lp-artifacts-v0",
        help="Minari dataset id, (namespace/)name-v<version> (minari)",
    )

    sw = sub.add_parser("sweep", help="(pool, policy or static width, seed) grid, on Ray")
    sw.add_argument("--pools", required=True, help="comma-separated pool addresses")
    sw.add_argument(
        "--widths", required=True, help="comma-separated arms: 'policy' and/or ± widths in %%"
    )
    sw.add_argument("--seeds", required=True, help="campaign seeds, e.g. 1,2,5-8")
    sw.add_argument("--episodes", type=_positive_int, default=10, help="episodes per cell")
    sw.add_argument("--ray-address", help="an existing Ray cluster (default: start one here)")
    sw.add_argument("--workers", type=_positive_int, help="CPUs of the local Ray (default all)")
    sw.add_argument("--batch", type=_positive_int, help="evaluations per Ray task")
    sw.add_argument("--serial", action="store_true", help="run in this process, without Ray")

    sub.add_parser("registry", help="print the query catalogue by priority")

    vp = sub.add_parser("validate-pool", help="check a proposal's pool before execution")
    vp.add_argument("--proposal-path", type=Path, required=True, help="the proposal.json to check")
    vp.add_argument("--run-id", required=True, help="run the proposal belongs to")
    vp.add_argument("--episode-id", required=True, help="episode the proposal belongs to")
    vp.add_argument(
        "--exec-mode", choices=["mock", "real"], help="default: the configured EXEC_MODE"
    )

    refresh = sub.add_parser("refresh", help="refresh due cache keys")
    refresh.add_argument(
        "--once", action="store_true", required=True, help="refresh what is due and exit"
    )
    refresh.add_argument("--workers", type=_workers, default=3, help="concurrent fetches (3)")
    refresh.add_argument("--pool-cap", type=_positive_int, default=3, help="active pools (3)")

    sub.add_parser("status", help="cache quality per key and last errors")

    trig = sub.add_parser("trigger", help="append a request to the trigger file")
    trig_sub = _Subcommands(
        trig.add_subparsers(dest="trigger_command", required=True, parser_class=_Parser), common
    )
    trig_ref = trig_sub.add_parser("refresh", help="ask for an immediate refresh of a pool")
    trig_ref.add_argument("--reason", required=True, help="why, e.g. out_of_range")
    trig_ref.add_argument("--pool", required=True, help="pool address (0x and 40 hex digits)")
    trig_ref.add_argument("--priorities", default="P0,P1", help="comma-separated (P0,P1)")
    trig_ep = trig_sub.add_parser("episodes", help="ask the daemon to run episodes")
    trig_ep.add_argument("--count", type=_positive_int, required=True, help="episodes to run")
    backtest_args.add_parsers(sub, parents=[common])
    return parser


class _Subcommands:
    """``add_subparsers()``'s action, giving every parser it adds the global options."""

    def __init__(
        self,
        action: argparse._SubParsersAction[_Parser],
        parents: _Parser | None = None,
    ) -> None:
        self._action = action
        self.parents = [parents] if parents is not None else []

    def add_parser(self, name: str, **kwargs: Any) -> _Parser:
        return self._action.add_parser(name, parents=self.parents, **kwargs)


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    return load_settings(data_dir=getattr(args, "data_dir", None), **extra)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clmmd`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "export" and args.format == "jsonl" and not (args.window and args.out):
        parser.error("export --format jsonl needs --window and --out")
    console = Console.for_process(getattr(args, "log_format", "auto"), getattr(args, "verbose", 0))
    try:
        return _dispatch(args, console)
    except (ConfigError, DataDirBusy) as exc:
        print(f"clmmd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DataDirUnusable as exc:
        print(f"clmmd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`clmmd runs show | head`): stop quietly, as Unix tools do.
        # Point stdout at /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    from clmmd.service.cli import commands

    if args.command == "run":
        settings = _settings(args, refresh_workers=args.workers, pool_cap=args.pool_cap)
        return asyncio.run(commands.run_daemon(settings, console, once=args.once))
    if args.command == "campaign":
        settings = _settings(
            args, episodes=args.episodes, seed=args.seed, episode_workers=args.workers
        )
        return asyncio.run(commands.campaign(settings, console, warm=not args.cold))
    # Every other command prints text on stdout: its log lines go to stderr only.
    settings = _settings(args)
    console.text_logging(settings)
    if args.command == "runs":
        sub = args.runs_command or "list"
        if sub == "validate":
            return commands.runs_validate(settings, None if args.all else args.run)
        if sub == "show":
            return commands.runs_show(settings, args.run)
        return commands.runs_list(settings)
    if args.command == "validate-pool":
        return asyncio.run(
            commands.validate_pool(
                settings, args.proposal_path, args.run_id, args.episode_id, args.exec_mode
            )
        )
    if args.command == "report":
        return commands.report(settings, args.run, args.out)
    if args.command == "clean":
        return commands.clean(settings, args.keep, dry_run=args.dry_run)
    if args.command == "evaluate":
        return asyncio.run(
            commands.evaluate(settings, args.episodes, args.seed, args.baseline_pct, args.train)
        )
    if args.command == "export" and args.format == "minari":
        from clmmd.service.cli.minari_export import export_minari

        return export_minari(settings, args.runs, args.dataset_id, args.out)
    if args.command == "export":
        return commands.export(settings, args.window, args.runs, args.out)
    if args.command == "sweep":
        from clmmd.service.cli.sweep import sweep

        return sweep(
            settings,
            pools=args.pools,
            widths=args.widths,
            seeds=args.seeds,
            episodes=args.episodes,
            ray_address=args.ray_address,
            serial=args.serial,
            workers=args.workers,
            batch=args.batch,
        )
    if args.command == "registry":
        return commands.registry(settings)
    if args.command == "refresh":
        return asyncio.run(commands.refresh_once(settings, args.workers, args.pool_cap))
    if args.command == "status":
        return commands.status(settings)
    if args.command in ("backtest", "history"):
        from clmmd.service.cli import backtest

        if args.command == "backtest":
            return backtest.backtest(settings, args)
        return backtest.history_command(settings, args)
    if args.command == "trigger":
        if args.trigger_command == "refresh":
            return commands.trigger_refresh(settings, args.reason, args.pool, args.priorities)
        return commands.trigger_episodes(settings, args.count)
    raise AssertionError(f"unhandled command {args.command}")
