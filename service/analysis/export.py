"""Training export: episodes grouped by time window, one JSON line per window.

The grouped form offline RL / GRPO trainers consume (seed 003): every agent (run, agent
version) that acted in a window, each as a trajectory (observation, action, reward, outcome),
and one market outcome per window. ``docs/export-format.md`` documents the format and
``docs/export-format.schema.json`` is its JSON Schema.

Episodes are placed by their metadata.json ``timestamp`` (the episode's start) into windows
aligned to the Unix epoch (``1h`` windows start on the hour, ``1d`` at 00:00 UTC); an episode
exactly on a boundary belongs to the window that starts there. Successful, failed and skipped
episodes are all exported (``outcome.status`` says which). An episode without metadata.json
(still running, or interrupted and not yet recovered) or with an unreadable artifact is left
out and listed in :attr:`ExportReport.not_exported` with the reason; nothing is guessed. One
episode's trajectory is built by :mod:`service.export_trajectory`.
"""

from __future__ import annotations

import os
import re
import secrets
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import structlog

from clmmd.artifacts.base.clock import utc_iso
from clmmd.artifacts.layout import RunLayout, list_runs, resolve_run
from clmmd.artifacts.writer import fsync_dir
from clmmd.service.analysis.export_trajectory import (
    PlacedEpisode,
    UnreadableEpisode,
    as_number,
    load_episode,
)

log = structlog.get_logger(__name__)

EXPORT_FORMAT_VERSION = 1
_WINDOW_RE = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_window(text: str) -> timedelta:
    """``"15m"``, ``"1h"``, ``"1d"``, ``"30s"`` … → timedelta; ``ValueError`` naming the value."""
    match = _WINDOW_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"invalid window {text!r}: expected a positive integer and a unit s, m, h or d "
            f"(e.g. '15m', '1h', '1d')"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def window_start(moment: datetime, width: timedelta) -> datetime:
    """Start of the epoch-aligned window holding ``moment`` (a boundary starts its window)."""
    # Integer microseconds: float division would misplace moments right at a boundary.
    offset = (moment - _EPOCH) // timedelta(microseconds=1)
    step = width // timedelta(microseconds=1)
    return _EPOCH + timedelta(microseconds=offset - offset % step)


def window_id(start: datetime, window: str) -> str:
    """``"2026-11-23T16:00:00Z/1h"``."""
    return f"{utc_iso(start)}/{window}"


@dataclass(frozen=True)
class NotExported:
    """An episode left out of the export, and why."""

    run_id: str
    episode_id: str
    reason: str


@dataclass
class ExportReport:
    """What an export wrote and what it had to leave out."""

    out: Path
    window: str
    runs: list[str]
    windows: int = 0
    episodes: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    not_exported: list[NotExported] = field(default_factory=list)

    def summary_line(self) -> str:
        """One line for the terminal: what was exported, where, and how much was left out."""
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items())) or "none"
        return (
            f"exported {self.episodes} episodes ({statuses}) from {len(self.runs)} run(s) into "
            f"{self.windows} window(s) of {self.window} -> {self.out}; "
            f"{len(self.not_exported)} not exported"
        )


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def market_outcome(trajectories: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the market did in a window, from its episodes (in window order)."""
    statuses = Counter(t["outcome"]["status"] for t in trajectories)
    priced = [
        t["outcome"]
        for t in trajectories
        if t["outcome"]["status"] == "success"
        and t["outcome"]["start_price_usd"]
        and t["outcome"]["end_price_usd"]
    ]
    first = priced[0]["start_price_usd"] if priced else None
    last = priced[-1]["end_price_usd"] if priced else None
    inputs = [t["observation"]["market_inputs"] or {} for t in trajectories]
    succeeded = [t for t in trajectories if t["outcome"]["status"] == "success"]
    rewards = [t["reward"]["total"] for t in succeeded if t["reward"] is not None]
    outcomes = [t["outcome"] for t in succeeded]
    return {
        "episodes": len(trajectories),
        "successful": statuses.get("success", 0),
        "failed": statuses.get("failed", 0),
        "skipped": statuses.get("skipped", 0),
        "runs": sorted({t["run_id"] for t in trajectories}),
        "agent_versions": sorted({t["agent_version"] for t in trajectories}),
        "start_price_usd": first,
        "end_price_usd": last,
        "price_change_pct": (last / first - 1) * 100 if first and last else None,
        "mean_episode_price_change_pct": _mean(
            [(o["end_price_usd"] / o["start_price_usd"] - 1) * 100 for o in priced]
        ),
        "volume_usd_per_day_mean": _mean(
            [v for i in inputs if (v := as_number(i.get("volume_usd_per_day"))) is not None]
        ),
        "gas_price_gwei_mean": _mean(
            [v for i in inputs if (v := as_number(i.get("gas_price_gwei"))) is not None]
        ),
        "gas_cost_usd_total": sum((o["gas_cost_usd"] for o in outcomes), 0.0),
        "fees_usd_total": sum((o["fees_usd"] for o in outcomes), 0.0),
        "pnl_usd_total": sum((o["pnl_usd"] for o in outcomes), 0.0),
        "reward_mean": _mean(rewards),
        "reward_std": statistics.pstdev(rewards) if rewards else None,
    }


def group_windows(placed: Iterable[PlacedEpisode], window: str) -> list[dict[str, Any]]:
    """Pure: the export lines, windows in time order, episodes in (timestamp, run, episode)."""
    width = parse_window(window)
    buckets: dict[datetime, list[PlacedEpisode]] = {}
    for item in placed:
        buckets.setdefault(window_start(item.timestamp, width), []).append(item)
    lines = []
    for start in sorted(buckets):
        trajectories = [p.trajectory for p in sorted(buckets[start], key=lambda p: p.order)]
        lines.append(
            {
                "format_version": EXPORT_FORMAT_VERSION,
                "window_id": window_id(start, window),
                "window_start": utc_iso(start),
                "window_end": utc_iso(start + width),
                "episodes": trajectories,
                "market_outcome": market_outcome(trajectories),
            }
        )
    return lines


def _write_lines_atomically(out: Path, lines: Sequence[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(orjson.dumps(line, option=orjson.OPT_SORT_KEYS) + b"\n" for line in lines)
    temp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(out.parent)


def run_layouts(data_dir: Path, run_ids: list[str] | None) -> list[RunLayout]:
    """The runs to export: ``run_ids`` (ids or ``latest``; every run when None), by id."""
    if run_ids is None:
        return list_runs(data_dir)
    chosen: dict[str, RunLayout] = {}
    for run in run_ids:
        layout = resolve_run(data_dir, run)  # LookupError names an unknown run
        chosen[layout.run_id] = layout
    return [chosen[k] for k in sorted(chosen)]


def left_out(not_exported: list[NotExported], run_id: str, episode_id: str, reason: str) -> None:
    """Record an episode the export leaves out, with a warning naming it and why."""
    not_exported.append(NotExported(run_id, episode_id, reason))
    log.warning("export_episode_skipped", run_id=run_id, episode_id=episode_id, reason=reason)


def load_runs(layouts: list[RunLayout], not_exported: list[NotExported]) -> list[PlacedEpisode]:
    """Every readable episode of ``layouts``; unreadable ones go to ``not_exported``."""
    placed: list[PlacedEpisode] = []
    for layout in layouts:
        for folder in layout.episode_dirs():
            try:
                placed.append(load_episode(layout.run_id, folder))
            except UnreadableEpisode as exc:
                left_out(not_exported, layout.run_id, folder.name, str(exc))
    return placed


def export_runs(data_dir: Path, run_ids: list[str] | None, window: str, out: Path) -> ExportReport:
    """Export the episodes of ``run_ids`` (all runs when None) grouped by ``window`` to ``out``.

    Blocking (reads every episode folder, fsyncs the output): async callers use
    ``asyncio.to_thread``. ``ValueError`` for a bad window, ``LookupError`` for an unknown
    run. ``out`` is replaced atomically (readers see the old file or the whole new one).
    """
    parse_window(window)  # fail before reading anything
    layouts = run_layouts(data_dir, run_ids)
    report = ExportReport(out=out, window=window, runs=[layout.run_id for layout in layouts])
    placed = load_runs(layouts, report.not_exported)
    lines = group_windows(placed, window)
    _write_lines_atomically(out, lines)
    report.windows = len(lines)
    report.episodes = len(placed)
    report.by_status = dict(Counter(p.trajectory["outcome"]["status"] for p in placed))
    log.info(
        "export_done",
        out=str(out),
        window=window,
        runs=len(layouts),
        windows=report.windows,
        episodes=report.episodes,
        not_exported=len(report.not_exported),
    )
    return report


# ``load_episode`` stays importable from here, where it was first defined.
__all__ = [
    "EXPORT_FORMAT_VERSION",
    "ExportReport",
    "NotExported",
    "export_runs",
    "group_windows",
    "load_episode",
    "market_outcome",
    "parse_window",
    "window_id",
    "window_start",
]
