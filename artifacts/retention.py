"""Retention: ``clmmd clean --keep N`` removes all but the newest N runs.

Rules, in order:

- the newest ``keep`` runs stay (run ids sort by start time, as :func:`list_runs` orders them);
- a run whose ``.active`` marker names a live process is never removed, whatever its age;
- a run folder that is a symbolic link is never followed or removed: retention only deletes
  real folders inside ``<data_dir>/runs``, and refuses to work at all when ``runs`` itself is a
  link (it would delete outside the data dir);
- a removed run is first renamed to a hidden ``.<run_id>.deleting-…`` name (atomic), so a clean
  cut short never leaves a half-deleted folder that looks like a run; such leftovers are removed
  by the next clean.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog

from clmmd.artifacts.layout import RunLayout, list_runs, runs_dir
from clmmd.artifacts.recovery import writer_alive

log = structlog.get_logger(__name__)

DELETING_MARKER = ".deleting-"


class RetentionError(Exception):
    """Retention refused to run; the message says why and what to do."""


@dataclass
class CleanReport:
    """What ``clean`` did (or, with ``dry_run``, would do)."""

    at: datetime
    keep: int
    dry_run: bool = False
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped_active: list[str] = field(default_factory=list)
    skipped_symlink: list[str] = field(default_factory=list)
    leftovers_removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def plan_removals(runs: list[str], keep: int) -> list[str]:
    """The run ids (oldest first) that fall outside the newest ``keep`` (pure)."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    ordered = sorted(runs)
    return ordered[: max(0, len(ordered) - keep)]


def clean(data_dir: Path, keep: int, now: datetime, *, dry_run: bool = False) -> CleanReport:
    """Remove all but the newest ``keep`` runs under ``data_dir`` (see the module rules)."""
    report = CleanReport(at=now, keep=keep, dry_run=dry_run)
    root = runs_dir(data_dir)
    if root.is_symlink():
        raise RetentionError(
            f"{root} is a symbolic link; clean only deletes inside the data dir: "
            f"point CLMMD_DATA_DIR (or --data-dir) at the folder that really holds runs/"
        )
    if not root.is_dir():
        return report
    layouts = {layout.run_id: layout for layout in list_runs(data_dir)}
    doomed = set(plan_removals(list(layouts), keep))
    for run_id, layout in sorted(layouts.items()):
        if run_id not in doomed:
            report.kept.append(run_id)
        elif layout.run_dir.is_symlink():
            report.skipped_symlink.append(run_id)
        elif writer_alive(layout):
            report.skipped_active.append(run_id)
        elif dry_run:
            report.removed.append(run_id)
        else:
            _remove_run(layout, root, report)
    if not dry_run:
        _remove_leftovers(root, report)
    log.info(
        "runs_cleaned",
        keep=keep,
        dry_run=dry_run,
        removed=len(report.removed),
        kept=len(report.kept),
        skipped_active=report.skipped_active,
        skipped_symlink=report.skipped_symlink,
        errors=len(report.errors),
    )
    return report


def _remove_run(layout: RunLayout, root: Path, report: CleanReport) -> None:
    hidden = root / f".{layout.run_id}{DELETING_MARKER}{report.at.strftime('%Y%m%d%H%M%S')}"
    try:
        layout.run_dir.rename(hidden)
    except OSError as exc:
        report.errors.append(f"{layout.run_id}: cannot rename for removal: {exc.strerror or exc}")
        return
    _rmtree(hidden, layout.run_id, report)
    if not hidden.exists():
        report.removed.append(layout.run_id)


def _remove_leftovers(root: Path, report: CleanReport) -> None:
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") and DELETING_MARKER in entry.name and not entry.is_symlink():
            _rmtree(entry, entry.name, report)
            if not entry.exists():
                report.leftovers_removed.append(entry.name)


def _rmtree(path: Path, label: str, report: CleanReport) -> None:
    """Remove a tree, recording (not raising) what could not be removed.

    ``shutil.rmtree`` unlinks symbolic links inside the tree rather than following them.
    """

    def on_error(func: object, failed: str, exc_info: object) -> None:
        error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        report.errors.append(f"{label}: cannot remove {failed}: {error}")

    shutil.rmtree(path, onerror=on_error)
