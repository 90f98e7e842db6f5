"""The artifact validator: checks every invariant of SPEC's Episodes section, naming each
violation with the file it concerns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from pydantic import BaseModel, ValidationError

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import ARTIFACT_MODELS, LogLine, MetricsSummary
from clmmd.artifacts.recovery import writer_alive
from clmmd.artifacts.summary import record_from_folder, summarize
from clmmd.artifacts.writer import TEMP_MARKER


@dataclass(frozen=True)
class Violation:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _check_json(path: Path, model: type[BaseModel], out: list[Violation]) -> BaseModel | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        out.append(Violation(path, f"unreadable: {exc.strerror}"))
        return None
    if not raw.strip():
        out.append(Violation(path, "empty file"))
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            out.append(Violation(path, f"invalid JSON: {first['msg']}"))
            return None
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        out.append(
            Violation(
                path,
                f"does not match {model.__name__}: {where}: {first['msg']}"
                f" ({exc.error_count()} error(s))",
            )
        )
        return None


def validate_episode(
    episode_dir: Path, run_id: str, *, writer_alive: bool = False
) -> list[Violation]:
    """All violations of one episode folder.

    With ``writer_alive`` (the run is still being written by a live process), an episode that
    has not finished yet is not a violation: its outcome, metadata and temp files may still come.
    """
    out: list[Violation] = []
    names = {p.name for p in episode_dir.iterdir()}
    running = writer_alive and "metadata.json" not in names
    if running:
        names = {n for n in names if TEMP_MARKER not in n}
    for leftover in sorted(n for n in names if TEMP_MARKER in n):
        out.append(Violation(episode_dir / leftover, "leftover temporary file (crash residue)"))
    for required in ("proposal.json", "metadata.json"):
        if required not in names and not (running and required == "metadata.json"):
            out.append(Violation(episode_dir, f"missing {required}"))
    has_result = "result.json" in names
    has_failure = "failure.json" in names
    if has_result == has_failure and not (running and not has_result):
        what = (
            "both result.json and failure.json"
            if has_result
            else "neither result.json nor failure.json"
        )
        out.append(Violation(episode_dir, f"has {what} (exactly one is required)"))
    if has_result and "reward.json" not in names:
        out.append(Violation(episode_dir, "result.json without reward.json"))
    parsed: dict[str, BaseModel] = {}
    for name, model in ARTIFACT_MODELS.items():
        if name in names:
            obj = _check_json(episode_dir / name, model, out)
            if obj is not None:
                parsed[name] = obj
    for name in ("proposal.json", "metadata.json"):
        obj = parsed.get(name)
        if obj is None:
            continue
        if getattr(obj, "run_id", run_id) != run_id:
            out.append(Violation(episode_dir / name, f"run_id {obj.run_id!r} is not {run_id!r}"))  # type: ignore[attr-defined]
        if getattr(obj, "episode_id", episode_dir.name) != episode_dir.name:
            out.append(
                Violation(
                    episode_dir / name,
                    f"episode_id {obj.episode_id!r} is not the folder's {episode_dir.name!r}",  # type: ignore[attr-defined]
                )
            )
    if "logs.jsonl" in names:
        out.extend(_check_log_lines(episode_dir / "logs.jsonl"))
    return out


def _check_log_lines(path: Path) -> list[Violation]:
    out: list[Violation] = []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        out.append(Violation(path, "last line is not terminated (partial write)"))
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            LogLine.model_validate(orjson.loads(line))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            out.append(Violation(path, f"line {number} is not a log line: {str(exc)[:80]}"))
    return out


def validate_run(layout: RunLayout) -> list[Violation]:
    """All violations of a run: every episode, leftovers, and the summary's consistency."""
    out: list[Violation] = []
    if not layout.run_dir.is_dir():
        return [Violation(layout.run_dir, "run folder does not exist")]
    alive = writer_alive(layout)
    for entry in sorted(layout.run_dir.iterdir()):
        # e.g. a metrics_summary.json replace cut short (or under way, while the writer lives)
        if TEMP_MARKER in entry.name and not alive:
            out.append(Violation(entry, "leftover temporary file (crash residue)"))
    if layout.episodes_dir.is_dir():
        for entry in sorted(layout.episodes_dir.iterdir()):
            if TEMP_MARKER in entry.name and not alive:
                what = "staging folder" if entry.is_dir() else "temporary file"
                out.append(Violation(entry, f"leftover {what} (crash residue)"))
    for episode_dir in layout.episode_dirs():
        out.extend(validate_episode(episode_dir, layout.run_id, writer_alive=alive))
    active = layout.active_marker.exists()
    episodes = layout.episode_dirs()
    if episodes and not layout.summary_path.exists() and not active:
        out.append(Violation(layout.summary_path, "missing (the run has episodes)"))
    elif layout.summary_path.exists() and not active:
        out.extend(_check_summary(layout))
    return out


_EPOCH = datetime.fromtimestamp(0, UTC)


def _close(actual: float | None, expected: float | None, abs_tol: float) -> bool:
    if actual is None or expected is None:
        return actual is expected
    # Sums are rounded and may be added in another order (episodes end out of order).
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=abs_tol)


def _check_summary(layout: RunLayout) -> list[Violation]:
    out: list[Violation] = []
    summary = _check_json(layout.summary_path, MetricsSummary, out)
    if not isinstance(summary, MetricsSummary):
        return out
    records = [r for d in layout.episode_dirs() if (r := record_from_folder(d)) is not None]
    # The folders are the truth; fold them exactly as the writer does and compare field by field.
    expected = summarize(layout.run_id, records, _EPOCH)  # updated_at is not compared
    for field in ("run_id", "episodes", "successful", "failed", "skipped", "risk_scalar_applied"):
        actual, want = getattr(summary, field), getattr(expected, field)
        if actual != want:
            out.append(
                Violation(layout.summary_path, f"{field} is {actual} but the folders show {want}")
            )
    tolerances = {
        "total_pnl_usd": 2e-6,
        "total_fees_usd": 2e-6,
        "total_gas_usd": 2e-6,
        "total_il_usd": 2e-6,
        "mean_fresh_pct": 0.011,
    }
    for field, tolerance in tolerances.items():
        actual, want = getattr(summary, field), getattr(expected, field)
        if not _close(actual, want, tolerance):
            out.append(
                Violation(layout.summary_path, f"{field} is {actual} but the folders show {want}")
            )
    return out
