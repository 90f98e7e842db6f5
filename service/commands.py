"""What each CLI command does (argument parsing stays in :mod:`service.cli`)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson
import structlog

from artifacts.layout import list_runs, resolve_run
from artifacts.validate import validate_run
from env.base import ClmmEnv
from env.mock import MockClmmEnv
from service.campaign import CampaignError, resolve_seed, run_campaign
from service.clock import Clock, SystemClock
from service.config import ConfigError, Settings
from service.logging import REDACTOR, SINKS, configure_logging
from service.progress import CampaignProgress
from service.warmup import warm_mock_intel
from service.wiring import build_source, load_configured_registry, open_intel

log = structlog.get_logger(__name__)


def _start_logging(settings: Settings) -> None:
    configure_logging(settings.log_level)
    if settings.dune_api_key is not None:
        REDACTOR.register(settings.dune_api_key.get_secret_value())


def _err(message: str) -> None:
    print(message, file=sys.stderr)


async def campaign(settings: Settings, *, warm: bool = True) -> int:
    """Run a campaign; 0 when every episode ended with an artifact folder."""
    _start_logging(settings)
    clock = SystemClock()
    env = build_env(settings, clock)
    seed = resolve_seed(settings)
    settings = settings.model_copy(update={"seed": seed})
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        stack = open_intel(settings, clock)
    except OSError as exc:
        _err(f"clmmd: cannot use data dir {settings.data_dir}: {exc}")
        return 1
    progress = CampaignProgress(settings.episodes, clock)
    try:
        if warm and settings.intel_data_source == "mock":
            # Mock intel is local and instant: warm the cache so episodes see fresh data.
            # A Dune source is never waited on here; the daemon or `refresh --once` does that.
            reports = await warm_mock_intel(
                stack.cache, stack.registry, clock, list(settings.pools), seed
            )
            log.info(
                "intel_warmed",
                keys=sum(r.ok for r in reports),
                failed=sum(r.failed for r in reports),
            )
        result = await run_campaign(
            settings,
            env=env,
            intel=stack.intel,
            clock=clock,
            on_episode_done=progress.episode_done,
        )
    except CampaignError as exc:
        _err(f"clmmd: campaign could not run: {exc}")
        return 1
    finally:
        progress.close()
        stack.close()
        await close_env(env)
    ok = sum(r.status == "success" for r in result.records)
    _err(
        f"campaign {result.run_id}: {len(result.records)}/{result.requested} episodes "
        f"({ok} successful, {len(result.records) - ok} failed/skipped, {len(result.lost)} lost), "
        f"seed {result.seed}\nartifacts: {result.run_dir}/\n"
        f"inspect:   clmmd runs show {result.run_id}   |   clmmd runs validate {result.run_id}"
    )
    return 0 if result.complete else 1


async def run_daemon(settings: Settings, *, once: bool = False) -> int:
    """``clmmd run``: the daemon until SIGTERM (or one burst with ``once``)."""
    from service.daemon import Daemon

    _start_logging(settings)
    SINKS.add_file(settings.data_dir / "logs" / "clmmd.log")
    env = build_env(settings, SystemClock())
    try:
        return await Daemon(settings, env=env, once=once).run()
    finally:
        await close_env(env)


def build_env(settings: Settings, clock: Clock) -> ClmmEnv:
    """The execution environment for the effective EXEC_MODE (mock never builds a client)."""
    if settings.exec_mode != "real":
        return MockClmmEnv()
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
    from env.real import real_env_from_settings

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
    from env.validator import validate_pool_command

    _start_logging(settings)
    return await validate_pool_command(
        proposal_path, run_id, episode_id, exec_mode or settings.exec_mode, settings
    )


async def evaluate(
    settings: Settings, episodes: int, seed: int, baseline_pct: float, train: int | None
) -> int:
    """``clmmd evaluate``: print the learned-vs-baseline comparison."""
    from agent.persistence import StateFormatError
    from service.evaluation import evaluate as run_evaluation
    from service.evaluation import format_report, train_then_evaluate

    configure_logging("warning")
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
    from service.export import export_runs

    configure_logging("warning")
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


def runs_list(settings: Settings) -> int:
    runs = list_runs(settings.data_dir)
    if not runs:
        print(f"no runs under {settings.data_dir / 'runs'}")
        return 0
    print(
        f"{'run_id':<28} {'episodes':>8} {'ok':>5} {'failed':>6} {'skipped':>7} "
        f"{'pnl_usd':>12} {'fees_usd':>10} {'gas_usd':>9} {'fresh%':>6}"
    )
    for layout in runs:
        s = _summary(layout.summary_path)
        if s is None:
            print(f"{layout.run_id:<28} {'(no summary yet)':>8}")
            continue
        fresh = s.get("mean_fresh_pct")
        print(
            f"{layout.run_id:<28} {s['episodes']:>8} {s['successful']:>5} {s['failed']:>6} "
            f"{s['skipped']:>7} {s['total_pnl_usd']:>12.2f} {s['total_fees_usd']:>10.2f} "
            f"{s['total_gas_usd']:>9.2f} {'-' if fresh is None else f'{fresh:.1f}':>6}"
        )
    return 0


def _summary(path: Any) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def runs_show(settings: Settings, run: str) -> int:
    try:
        layout = resolve_run(settings.data_dir, run)
    except LookupError as exc:
        _err(f"clmmd: {exc}")
        return 2
    summary = _summary(layout.summary_path) or {}
    print(f"run {layout.run_id}  ({layout.run_dir})")
    for key in (
        "episodes",
        "successful",
        "failed",
        "skipped",
        "total_pnl_usd",
        "total_fees_usd",
        "total_gas_usd",
        "total_il_usd",
        "risk_scalar_applied",
        "mean_fresh_pct",
    ):
        print(f"  {key:<20} {summary.get(key, '-')}")
    print(f"\n  {'episode':<10} {'outcome':<10} {'pnl_usd':>10} {'fees_usd':>9} {'in_range%':>9}")
    for episode_dir in layout.episode_dirs():
        result = _summary(episode_dir / "result.json")
        failure = _summary(episode_dir / "failure.json")
        if result is not None:
            print(
                f"  {episode_dir.name:<10} {result.get('status', '?'):<10} "
                f"{result.get('pnl_usd', 0):>10.2f} {result.get('fees_usd', 0):>9.2f} "
                f"{result.get('time_in_range_pct', 0):>9.1f}"
            )
        elif failure is not None:
            print(
                f"  {episode_dir.name:<10} failed@{failure.get('stage', '?'):<3} "
                f"{failure.get('error_type', '')}: {str(failure.get('error_message', ''))[:60]}"
            )
        else:
            print(f"  {episode_dir.name:<10} running")
    return 0


def runs_validate(settings: Settings, run: str | None) -> int:
    """Print every violation; exit 1 if any, 2 if the run does not exist."""
    try:
        layouts = (
            list_runs(settings.data_dir) if run is None else [resolve_run(settings.data_dir, run)]
        )
    except LookupError as exc:
        _err(f"clmmd: {exc}")
        return 2
    total = 0
    for layout in layouts:
        violations = validate_run(layout)
        episodes = len(layout.episode_dirs())
        for violation in violations:
            print(f"VIOLATION {violation}")
        print(f"{layout.run_id}: {episodes} episodes, {len(violations)} violation(s)")
        total += len(violations)
    return 1 if total else 0


def report(settings: Settings, run: str, out_dir: Path | None) -> int:
    """``clmmd report``: write the run's HTML report and PNG plots, print where they are."""
    from service.report import write_report

    try:
        layout = resolve_run(settings.data_dir, run)
    except LookupError as exc:
        _err(f"clmmd: {exc} (run `clmmd campaign` first, or check --data-dir/CLMMD_DATA_DIR)")
        return 2
    try:
        files = write_report(layout, SystemClock().now(), out_dir)
    except OSError as exc:
        _err(f"clmmd: cannot write the report: {exc} (check the output folder's permissions)")
        return 1
    print(f"report: {files.html}")
    for png in files.pngs:
        print(f"plot:   {png}")
    return 0


def clean(settings: Settings, keep: int, *, dry_run: bool = False) -> int:
    """``clmmd clean --keep N``: remove old runs; exit 1 if something could not be removed."""
    from artifacts.retention import RetentionError
    from artifacts.retention import clean as clean_runs

    _start_logging(settings)
    try:
        result = clean_runs(settings.data_dir, keep, SystemClock().now(), dry_run=dry_run)
    except RetentionError as exc:
        _err(f"clmmd clean: {exc}")
        return 2
    verb = "would remove" if dry_run else "removed"
    for run_id in result.removed:
        print(f"{verb} {run_id}")
    for run_id in result.skipped_active:
        print(f"kept    {run_id} (still being written by a live process)")
    for run_id in result.skipped_symlink:
        print(f"kept    {run_id} (a symbolic link: not followed; remove it by hand)")
    for error in result.errors:
        print(f"ERROR   {error} (check ownership and permissions of the data dir)")
    print(
        f"{verb} {len(result.removed)} run(s), kept {len(result.kept)} newest"
        f" + {len(result.skipped_active) + len(result.skipped_symlink)} protected"
    )
    return 1 if result.errors else 0


def registry() -> int:
    from scheduler.registry import format_registry
    from service.config import load_settings

    print(format_registry(load_configured_registry(load_settings())))
    return 0


async def refresh_once(settings: Settings, workers: int, pool_cap: int) -> int:
    """Refresh what is due; exit 1 if something was due and nothing could be refreshed."""
    _start_logging(settings)
    from scheduler.refresher import Refresher

    clock = SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stack = open_intel(settings, clock)
    source = build_source(settings, clock)
    refresher = Refresher(
        source,
        stack.cache,
        stack.registry,
        clock,
        workers=workers,
        fetch_timeout_s=settings.refresh_deadline_s,
    )
    try:
        report = await refresher.refresh_once(list(settings.pools), pool_cap=pool_cap)
    finally:
        await refresher.close()
        await source.close()
        stack.close()
    for outcome in report.outcomes:
        error = f"  {outcome.error}" if outcome.error else ""
        print(f"{outcome.status:<8} {outcome.key:<60} {outcome.duration_s * 1000:8.1f} ms{error}")
    print(
        f"refreshed {report.ok}, failed {report.failed}, skipped {report.skipped}; "
        f"peak concurrent fetches {refresher.peak_in_flight}"
    )
    if report.outcomes and report.ok == 0:
        return 1
    return 0


def status(settings: Settings) -> int:
    """Cache quality per key with age and last error, the trigger position, the daemon."""
    from service import status_report

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
    finally:
        stack.close()
    print(status_report.trigger_line(settings.data_dir))
    print(status_report.daemon_line(running, settings.http_listen))
    return 0


def trigger_refresh(settings: Settings, reason: str, pool: str, priorities: str) -> int:
    from scheduler.triggers import trigger_refresh as append_refresh

    wanted = tuple(p.strip() for p in priorities.split(",") if p.strip())
    try:
        trigger_id = append_refresh(reason, pool, data_dir=settings.data_dir, priorities=wanted)
    except ValueError as exc:
        _err(f"clmmd trigger refresh: {exc}")
        return 2
    print(trigger_id)
    return 0


def trigger_episodes(settings: Settings, count: int) -> int:
    from scheduler.triggers import trigger_episodes as append_episodes

    try:
        trigger_id = append_episodes(count, data_dir=settings.data_dir)
    except ValueError as exc:
        _err(f"clmmd trigger episodes: {exc}")
        return 2
    print(trigger_id)
    return 0
