"""The run inspection commands: ``runs list|show|validate``, ``report``, ``clean``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from clmmd.artifacts.base.clock import SystemClock
from clmmd.artifacts.layout import list_runs, resolve_run
from clmmd.artifacts.validate import validate_run
from clmmd.service.config import Settings


def _err(message: str) -> None:
    print(message, file=sys.stderr)


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
    """The run's summary, its PnL decomposition, and one line per episode with its range in
    ticks, in USD and in per cent around the price."""
    from clmmd.service.analysis.report_data import episode_row

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
        "total_hodl_return_usd",
        "total_il_usd",
        "total_fees_usd",
        "total_gas_usd",
        "risk_scalar_applied",
        "mean_fresh_pct",
    ):
        print(f"  {key:<22} {summary.get(key, '-')}")
    print(f"  {'PnL decomposition':<22} {_decomposition(summary)}")
    print(
        f"\n  {'episode':<10} {'outcome':<10} {'pnl_usd':>10} {'hodl_usd':>10} {'il_usd':>9} "
        f"{'fees_usd':>9} {'gas_usd':>8} {'in_range%':>9}  {'ticks':<13} {'width':>5}  "
        f"{'range_usd':<21} range_%"
    )
    for number, episode_dir in enumerate(layout.episode_dirs(), start=1):
        r = episode_row(episode_dir, number)
        if r.outcome in ("success", "skipped") and r.stage is None:
            ticks = "-" if r.tick_lower is None else f"{r.tick_lower}–{r.tick_upper}"
            band = r.price_range
            usd, pct = (band.prices_text(), band.percent_text()) if band else ("-", "-")
            line = (
                f"  {r.episode_id:<10} {r.outcome:<10} {_num(r.pnl_usd, 10)} "
                f"{_num(r.hodl_return_usd, 10)} {_num(r.il_usd, 9)} {_num(r.fees_usd, 9)} "
                f"{_num(r.gas_usd, 8)} {_num(r.time_in_range_pct, 9, 1)}  {ticks:<13} "
                f"{'-' if r.width_ticks is None else r.width_ticks:>5}  {usd:<21} {pct}"
            )
            print(line.rstrip())
        elif r.outcome == "failed":
            print(f"  {r.episode_id:<10} failed@{r.stage or '?':<3} {str(r.detail or '')[:80]}")
        else:
            print(f"  {r.episode_id:<10} {r.outcome}")
    return 0


def _num(value: float | None, width: int, digits: int = 2) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width},.{digits}f}"


def _decomposition(summary: dict[str, Any]) -> str:
    """``PnL = HODL return − IL + fees − gas`` with the run's totals (``-`` when unknown)."""
    try:
        pnl, hodl, il, fees, gas = (
            float(summary[k])
            for k in (
                "total_pnl_usd",
                "total_hodl_return_usd",
                "total_il_usd",
                "total_fees_usd",
                "total_gas_usd",
            )
        )
    except (KeyError, TypeError, ValueError):
        return "- (HODL return not recorded in this run)"
    return (
        f"{pnl:,.2f} = HODL return {hodl:,.2f} − IL {il:,.2f} + fees {fees:,.2f} − gas {gas:,.2f}"
    )


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
    from clmmd.service.analysis.report import write_report

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
    from clmmd.artifacts.retention import RetentionError
    from clmmd.artifacts.retention import clean as clean_runs

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
