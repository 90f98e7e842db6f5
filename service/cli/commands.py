"""What each CLI command does (argument parsing stays in :mod:`service.cli`)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

import structlog

from clmmd.artifacts.base.clock import Clock, SystemClock
from clmmd.env.base import ClmmEnv
from clmmd.service.cli.campaign_summary import campaign_summary
from clmmd.service.cli.console import Console
from clmmd.service.cli.progress import CampaignProgress
from clmmd.service.cli.run_commands import clean, report, runs_list, runs_show, runs_validate
from clmmd.service.config import ConfigError, Settings
from clmmd.service.logging import REDACTOR
from clmmd.service.market import mock_env
from clmmd.service.runs.campaign import CampaignError, CampaignStop, run_campaign
from clmmd.service.runs.opening import resolve_seed
from clmmd.service.runs.warmup import MockMarketPhases
from clmmd.service.wiring import build_refresh_stack, load_configured_registry, open_intel

log = structlog.get_logger(__name__)

__all__ = [
    "build_env",
    "campaign",
    "clean",
    "evaluate",
    "export",
    "refresh_once",
    "registry",
    "report",
    "run_daemon",
    "runs_list",
    "runs_show",
    "runs_validate",
    "status",
    "trigger_episodes",
    "trigger_refresh",
    "validate_pool",
]


def _err(message: str) -> None:
    print(message, file=sys.stderr)


#: Exit status of a campaign stopped by a signal: 128 + the signal number, as a shell does.
_SIGNAL_EXIT = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


async def campaign(settings: Settings, console: Console, *, warm: bool = True) -> int:
    """Run a campaign; 0 when every episode ended with an artifact folder, 1 when some did
    not, 130/143 when Ctrl-C/SIGTERM stopped it (after finishing or completing what ran).

    On a terminal: a progress bar and a text summary on stdout, log lines in the log file.
    Elsewhere: JSON lines on stdout, the summary being the last one (``campaign_summary``).
    """
    from clmmd.service.host.stdlib_logs import route_stdlib_logging

    log_path = console.campaign_logging(settings)
    route_stdlib_logging()  # library noise goes to the JSON log, never as bare text
    clock = SystemClock()
    env = build_env(settings, clock)
    seed = resolve_seed(settings)
    settings = settings.model_copy(update={"seed": seed})
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        stack = open_intel(settings, clock)
    except (OSError, sqlite3.Error) as exc:
        _err(
            f"clmmd: campaign could not start: cannot use data dir {settings.data_dir}: "
            f"{getattr(exc, 'strerror', None) or exc} (free disk space or fix its permissions)"
        )
        return 1
    stop = CampaignStop()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.request, signal.Signals(signum).name)
    progress = CampaignProgress(
        settings.episodes, clock, stream=sys.stdout, interactive=console.draws_progress
    )
    try:
        phases = None
        if warm and settings.intel_data_source == "mock":
            # Mock intel is local and instant: warm the cache so episodes see fresh data, and
            # move the mock market through its seeded regimes as the campaign goes on.
            # A Dune source is never waited on here; the daemon or `refresh --once` does that.
            phases = MockMarketPhases(
                stack.cache, stack.registry, clock, list(settings.pools), seed
            )
        result = await run_campaign(
            settings,
            env=env,
            intel=stack.intel,
            clock=clock,
            on_episode_done=progress.episode_done,
            phases=phases,
            stop=stop,
        )
    except CampaignError as exc:
        _err(f"clmmd: campaign could not run: {exc}")
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        progress.close()
        stack.close()
        await close_env(env)
    summary = campaign_summary(result, settings, console, log_path)
    if console.human:
        print(summary.text(), flush=True)
    else:
        log.info("campaign_summary", **summary.fields())
    if result.interrupted_by is not None:
        return _SIGNAL_EXIT.get(result.interrupted_by, 1)
    return 0 if result.complete else 1


async def run_daemon(settings: Settings, console: Console, *, once: bool = False) -> int:
    """``clmmd run``: the daemon until SIGTERM (or one burst with ``once``).

    Its log lines stay JSON on stdout whatever stdout is (journald reads them).
    """
    from clmmd.service.host.daemon import Daemon
    from clmmd.service.host.stdlib_logs import route_stdlib_logging

    console.daemon_logging(settings)
    route_stdlib_logging()
    env = build_env(settings, SystemClock())
    try:
        return await Daemon(settings, env=env, once=once).run()
    finally:
        await close_env(env)


def build_env(settings: Settings, clock: Clock) -> ClmmEnv:
    """The execution environment for the effective EXEC_MODE (mock never builds a client; its
    market is CLMMD_MARKET's)."""
    if settings.exec_mode != "real":
        return mock_env(settings)
    missing = [
        name
        for name, value in (
            ("GATEWAY_WALLET_ADDRESS", settings.gateway_wallet_address),
            ("CLMMD_MAX_POSITION_USD", settings.max_position_usd),
        )
        if value is None
    ]
    if missing:
        raise ConfigError(
            f"invalid configuration: {', '.join(missing)} NOT SET but EXEC_MODE='real' "
            "(real mode needs a wallet and a position cap)"
        )
    from clmmd.env.real import real_env_from_settings

    if settings.gateway_api_key is not None:
        REDACTOR.register(settings.gateway_api_key.get_secret_value())
    try:
        return real_env_from_settings(settings, clock)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"invalid configuration: real mode: {exc}") from None


async def close_env(env: ClmmEnv) -> None:
    client = getattr(env, "client", None)
    if client is not None:
        await client.close()


async def validate_pool(
    settings: Settings, proposal_path: Path, run_id: str, episode_id: str, exec_mode: str | None
) -> int:
    """``clmmd validate-pool``: the seed runbook's pool check, one line per check."""
    from clmmd.service.cli.pool_check import validate_pool_command

    return await validate_pool_command(
        proposal_path, run_id, episode_id, exec_mode or settings.exec_mode, settings
    )


async def evaluate(
    settings: Settings, episodes: int, seed: int, baseline_pct: float, train: int | None
) -> int:
    """``clmmd evaluate``: print the learned-vs-baseline comparison."""
    from clmmd.agent.persistence import StateFormatError
    from clmmd.service.analysis.evaluation import evaluate as run_evaluation
    from clmmd.service.analysis.evaluation import format_report, train_then_evaluate

    try:
        if train:
            trained = await train_then_evaluate(
                settings,
                train_episodes=train,
                eval_episodes=episodes,
                seed=seed,
                baseline_width_pct=baseline_pct,
            )
            report = trained.evaluation
            print(f"trained on {train} mock episodes into {trained.state_path}")
        else:
            report = await run_evaluation(
                settings, episodes=episodes, seed=seed, baseline_width_pct=baseline_pct
            )
    except StateFormatError as exc:
        _err(f"clmmd evaluate: the saved agent state is unreadable: {exc}")
        return 2
    print(format_report(report))
    return 0


def export(settings: Settings, window: str, runs: list[str] | None, out: Path) -> int:
    """``clmmd export``: grouped training data, one JSON line per time window."""
    from clmmd.service.analysis.export import export_runs

    try:
        report = export_runs(settings.data_dir, runs, window, out)
    except ValueError as exc:
        _err(f"clmmd export: {exc}")
        return 2
    except LookupError as exc:
        _err(f"clmmd export: {exc}")
        return 2
    print(report.summary_line())
    return 0


def registry(settings: Settings) -> int:
    from clmmd.scheduler.registry import format_registry

    print(format_registry(load_configured_registry(settings)))
    return 0


async def refresh_once(settings: Settings, workers: int, pool_cap: int) -> int:
    """Refresh what is due; exit 1 if something was due and nothing could be refreshed."""
    clock = SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stack = open_intel(settings, clock)
    try:
        refresh = build_refresh_stack(settings, stack, clock, workers=workers)
    except BaseException:
        stack.close()
        raise
    refresher = refresh.refresher
    try:
        report = await refresher.refresh_once(list(settings.pools), pool_cap=pool_cap)
        credits = refresh.ledger.status()
    finally:
        await refresh.close()
        stack.close()
    width = max([60, *(len(o.key) for o in report.outcomes)])  # pool keys run past 60
    for outcome in report.outcomes:
        error = f"  {outcome.error}" if outcome.error else ""
        print(
            f"{outcome.status:<8} {outcome.key:<{width}} {outcome.duration_s * 1000:8.1f} ms{error}"
        )
    print(
        f"refreshed {report.ok}, failed {report.failed}, skipped {report.skipped}, "
        f"over budget {report.skipped_budget}; peak concurrent fetches {refresher.peak_in_flight}"
    )
    from clmmd.service.cli.status_report import credit_line

    print(credit_line(credits))
    if report.outcomes and report.ok == 0:
        return 1
    return 0


def status(settings: Settings) -> int:
    """Cache quality per key with age and last error, the trigger position, the daemon."""
    from clmmd.service.cli import status_report

    clock = SystemClock()
    try:
        stack = open_intel(settings, clock)
    except (sqlite3.Error, OSError) as exc:
        # Opening diskcache writes to SQLite, so a full disk fails here; say so plainly.
        _err(
            f"clmmd status: cannot open the cache at {settings.data_dir / 'cache'}: {exc} "
            "(free disk space; a running daemon still serves /status)"
        )
        return 1
    running = status_report.daemon_status(settings.http_listen_address)
    pools = list(settings.pools)
    if running and isinstance(running.get("active_pools"), list):
        pools = [str(p) for p in running["active_pools"]]
    try:
        for line in status_report.cache_lines(
            stack.cache, stack.registry, pools, settings.pool_cap, clock.now()
        ):
            print(line)
        from clmmd.scheduler.credits import CreditLedger

        ledger = CreditLedger(stack.cache, clock, settings.dune_credit_budget_per_day)
        print(status_report.credit_line(ledger.status()))
    finally:
        stack.close()
    print(status_report.trigger_line(settings.data_dir))
    print(status_report.owner_line(settings.data_dir))
    print(status_report.daemon_line(running, settings.http_listen))
    return 0


def trigger_refresh(settings: Settings, reason: str, pool: str, priorities: str) -> int:
    from clmmd.scheduler.triggers import trigger_refresh as append_refresh

    wanted = tuple(p.strip() for p in priorities.split(",") if p.strip())
    try:
        trigger_id = append_refresh(reason, pool, data_dir=settings.data_dir, priorities=wanted)
    except ValueError as exc:
        _err(f"clmmd trigger refresh: {exc}")
        return 2
    _appended(
        settings,
        trigger_id,
        f"refresh of pool {pool}, priorities {','.join(dict.fromkeys(wanted))}, reason {reason!r}",
    )
    return 0


def trigger_episodes(settings: Settings, count: int) -> int:
    from clmmd.scheduler.triggers import trigger_episodes as append_episodes

    try:
        trigger_id = append_episodes(count, data_dir=settings.data_dir)
    except ValueError as exc:
        _err(f"clmmd trigger episodes: {exc}")
        return 2
    _appended(settings, trigger_id, f"{count} episode(s)")
    return 0


def _appended(settings: Settings, trigger_id: str, what: str) -> None:
    """Say what was appended, where, and who reads it."""
    from clmmd.scheduler.triggers import trigger_path

    print(
        f"appended trigger {trigger_id}: {what}\n"
        f"to {trigger_path(settings.data_dir)} (a running `clmmd run` on this data dir acts on "
        "it within milliseconds; `clmmd status` shows how far it has read)"
    )
