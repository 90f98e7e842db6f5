"""Completing episodes that a dead process left unfinished.

An episode folder always has proposal.json (it appears with it). If the process died before the
outcome was written, recovery adds failure.json (stage ``interrupted``); if it died after
result.json but before timings.json, recovery writes timings.json from the stage timings in
result.json (start and end: the modification times of proposal.json and result.json); if it died
before metadata.json, recovery writes one from run.json and proposal.json. Staging folders and temp
files (never visible as artifacts) are removed. Runs whose writer is still alive are left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from clmmd.artifacts.layout import RunLayout, list_runs
from clmmd.artifacts.models import (
    EpisodeFailure,
    EpisodeMetadata,
    EpisodeResult,
    MetadataExtra,
    RunInfo,
    Timings,
)
from clmmd.artifacts.summary import summarize_folders
from clmmd.artifacts.writer import TEMP_MARKER, replace_json, write_json_new


@dataclass
class RecoveryReport:
    runs_checked: int = 0
    episodes_completed: list[str] = field(default_factory=list)
    residue_removed: list[str] = field(default_factory=list)
    runs_skipped_active: list[str] = field(default_factory=list)


def _iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat().replace("+00:00", "Z")


def writer_alive(layout: RunLayout) -> bool:
    """True when the run's ``.active`` marker names a live process other than us."""
    try:
        pid = int(layout.active_marker.read_text().strip())
    except (OSError, ValueError):
        return False
    # 0 and negative "pids" address process groups in kill(2), which always exist.
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_residue(layout: RunLayout, report: RecoveryReport) -> None:
    dirs = [layout.run_dir, layout.episodes_dir, *layout.episode_dirs()]
    for directory in dirs:
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if TEMP_MARKER not in entry.name:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            report.residue_removed.append(str(entry))


def _run_info(layout: RunLayout) -> RunInfo | None:
    with contextlib.suppress(OSError, ValueError):
        return RunInfo.model_validate_json((layout.run_dir / "run.json").read_bytes())
    return None


def _complete_episode(
    episode_dir: Path, layout: RunLayout, info: RunInfo | None, now: datetime
) -> bool:
    names = {p.name for p in episode_dir.iterdir()}
    changed = False
    if "result.json" not in names and "failure.json" not in names:
        failure = EpisodeFailure(
            stage="interrupted",
            error_type="Interrupted",
            error_message="the process ended before this episode finished",
            hint="nothing to fix here: the episode was recorded as failed on restart",
            timestamp=_iso(now),
        )
        write_json_new(episode_dir / "failure.json", failure)
        changed = True
    if "result.json" in names and "timings.json" not in names:
        timings = _timings_from_result(episode_dir)
        if timings is not None:
            write_json_new(episode_dir / "timings.json", timings)
            changed = True
    if "metadata.json" not in names:
        proposal: dict[str, object] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = orjson.loads((episode_dir / "proposal.json").read_bytes())
            if isinstance(loaded, dict):
                proposal = loaded
        seed = proposal.get("seed")
        metadata = EpisodeMetadata(
            run_id=layout.run_id,
            episode_id=episode_dir.name,
            agent_version=str(
                proposal.get("agent_version") or (info and info.agent_version) or "unknown"
            ),
            config_hash=info.config_hash if info else "unknown",
            exec_mode=info.exec_mode if info else "mock",
            timestamp=_iso(now),
            regime_key=regime if isinstance(regime := proposal.get("regime_key"), str) else None,
            seed=seed if isinstance(seed, int) else (info.seed if info else 0),
            learning_update_applied=False,
            learning_update_reason="interrupted: the episode did not finish",
            extra=MetadataExtra(),
        )
        write_json_new(episode_dir / "metadata.json", metadata)
        changed = True
    return changed


def _timings_from_result(episode_dir: Path) -> Timings | None:
    try:
        result = EpisodeResult.model_validate_json((episode_dir / "result.json").read_bytes())
        started = (episode_dir / "proposal.json").stat().st_mtime
        ended = (episode_dir / "result.json").stat().st_mtime
    except (OSError, ValueError):
        return None  # the validator names an unreadable result; nothing to derive from it
    return Timings(
        stages_ms=dict(result.timings_ms),
        total_ms=round(max(0.0, ended - started) * 1000.0, 3),
        started_at=_iso(datetime.fromtimestamp(started, UTC)),
        ended_at=_iso(datetime.fromtimestamp(ended, UTC)),
    )


def recover_run(layout: RunLayout, now: datetime) -> RecoveryReport:
    """Complete one run's interrupted episodes and rewrite its summary."""
    report = RecoveryReport(runs_checked=1)
    if writer_alive(layout):
        report.runs_skipped_active.append(layout.run_id)
        return report
    _remove_residue(layout, report)
    info = _run_info(layout)
    for episode_dir in layout.episode_dirs():
        if _complete_episode(episode_dir, layout, info, now):
            report.episodes_completed.append(f"{layout.run_id}/{episode_dir.name}")
    if layout.episodes_dir.is_dir():
        replace_json(layout.summary_path, summarize_folders(layout, now))
    layout.active_marker.unlink(missing_ok=True)
    return report


def recover_all(data_dir: Path, now: datetime) -> RecoveryReport:
    """Recover every run under ``data_dir`` whose writer is gone."""
    total = RecoveryReport()
    for layout in list_runs(data_dir):
        part = recover_run(layout, now)
        total.runs_checked += 1
        total.episodes_completed += part.episodes_completed
        total.residue_removed += part.residue_removed
        total.runs_skipped_active += part.runs_skipped_active
    return total
