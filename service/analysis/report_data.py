"""What ``clmmd report`` shows of a run, read from its folder.

Reading is forgiving: a missing or broken episode file leaves that row's fields empty instead
of failing the report, because a report is most wanted exactly when a run went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import MetricsSummary
from clmmd.artifacts.recovery import writer_alive
from clmmd.artifacts.summary import summarize_folders
from clmmd.service.analysis.ranges import PriceRange, price_range


@dataclass(frozen=True)
class EpisodeRow:
    """What the report shows of one episode folder."""

    episode_id: str
    number: int
    outcome: str  # success | failed | skipped | running
    pnl_usd: float | None = None
    fees_usd: float | None = None
    gas_usd: float | None = None
    il_usd: float | None = None
    hodl_return_usd: float | None = None  # PnL = HODL return − IL + fees − gas
    time_in_range_pct: float | None = None
    width_ticks: int | None = None
    tick_lower: int | None = None
    tick_upper: int | None = None
    price_range: PriceRange | None = None
    regime_key: str | None = None
    fresh: int | None = None
    stale: int | None = None
    missing_or_too_old: int | None = None
    fresh_pct: float | None = None
    stage: str | None = None
    detail: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class RunData:
    """One run as the report sees it: run.json, the summary and a row per episode."""

    run_id: str
    info: dict[str, Any]
    summary: MetricsSummary
    rows: list[EpisodeRow]
    writer_pid: int | None  # set while a live process is still writing the run


def _load(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _num(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def episode_row(episode_dir: Path, number: int) -> EpisodeRow:
    """Read one episode folder (missing or broken files leave fields empty)."""
    result, failure = _load(episode_dir / "result.json"), _load(episode_dir / "failure.json")
    proposal, metadata = _load(episode_dir / "proposal.json"), _load(episode_dir / "metadata.json")
    extra = metadata.get("extra") if isinstance(metadata.get("extra"), dict) else {}
    hygiene = extra.get("intel_hygiene") if isinstance(extra, dict) else None
    hygiene = hygiene if isinstance(hygiene, dict) else {}
    action = proposal.get("action") if isinstance(proposal.get("action"), dict) else {}
    regime = metadata.get("regime_key") or proposal.get("regime_key")
    common: dict[str, Any] = {
        "episode_id": episode_dir.name,
        "number": number,
        "width_ticks": _int(action, "width_ticks") if isinstance(action, dict) else None,
        "tick_lower": _int(proposal, "tick_lower"),
        "tick_upper": _int(proposal, "tick_upper"),
        "price_range": price_range(
            _num(proposal, "price_lower_usd"),
            _num(proposal, "price_upper_usd"),
            _num(proposal, "price_at_proposal_usd"),
        ),
        "regime_key": regime if isinstance(regime, str) else None,
        "fresh": _int(hygiene, "fresh"),
        "stale": _int(hygiene, "stale"),
        "missing_or_too_old": _int(hygiene, "missing_or_too_old"),
        "fresh_pct": _num(hygiene, "fresh_pct"),
    }
    if result:
        status = result.get("status")
        return EpisodeRow(
            outcome=status if status in ("success", "failed", "skipped") else "failed",
            pnl_usd=_num(result, "pnl_usd"),
            fees_usd=_num(result, "fees_usd"),
            gas_usd=_num(result, "gas_cost_usd"),
            il_usd=_num(result, "il_usd"),
            hodl_return_usd=_num(result, "hodl_return_usd"),
            time_in_range_pct=_num(result, "time_in_range_pct"),
            detail=result.get("reason") if isinstance(result.get("reason"), str) else None,
            **common,
        )
    if failure:
        return EpisodeRow(
            outcome="failed",
            stage=str(failure.get("stage", "?")),
            detail=f"{failure.get('error_type', '')}: {failure.get('error_message', '')}",
            hint=failure.get("hint") if isinstance(failure.get("hint"), str) else None,
            **common,
        )
    return EpisodeRow(outcome="running", **common)


def load_run(layout: RunLayout, now: datetime) -> RunData:
    """Everything the report shows, read from the run folder."""
    rows = [episode_row(d, n) for n, d in enumerate(layout.episode_dirs(), start=1)]
    pid: int | None = None
    if writer_alive(layout):
        try:
            pid = int(layout.active_marker.read_text().strip())
        except (OSError, ValueError):
            pid = None
    return RunData(
        layout.run_id, _load(layout.run_dir / "run.json"), summarize_folders(layout, now), rows, pid
    )
