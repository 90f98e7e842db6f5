"""metrics_summary.json: totals of a run, folded from per-episode records (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson

from artifacts.layout import RunLayout
from artifacts.models import MetricsSummary

Status = Literal["success", "failed", "skipped"]


@dataclass(frozen=True)
class EpisodeRecord:
    """What the summary needs of one finished episode."""

    status: Status
    pnl_usd: float = 0.0
    fees_usd: float = 0.0
    gas_cost_usd: float = 0.0
    il_usd: float = 0.0
    risk_scalar_applied: bool = False
    fresh_pct: float | None = None


def summarize(run_id: str, records: Iterable[EpisodeRecord], now: datetime) -> MetricsSummary:
    """Fold episode records into the run summary."""
    items = list(records)
    fresh = [r.fresh_pct for r in items if r.fresh_pct is not None]
    applied = sum(1 for r in items if r.risk_scalar_applied)
    return MetricsSummary(
        run_id=run_id,
        updated_at=now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        episodes=len(items),
        successful=sum(1 for r in items if r.status == "success"),
        failed=sum(1 for r in items if r.status == "failed"),
        skipped=sum(1 for r in items if r.status == "skipped"),
        total_pnl_usd=round(sum(r.pnl_usd for r in items), 6),
        total_fees_usd=round(sum(r.fees_usd for r in items), 6),
        total_gas_usd=round(sum(r.gas_cost_usd for r in items), 6),
        total_il_usd=round(sum(r.il_usd for r in items), 6),
        risk_scalar_applied=f"{applied}/{len(items)}",
        mean_fresh_pct=round(sum(fresh) / len(fresh), 2) if fresh else None,
    )


def _load(path: Path) -> dict[str, object] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def record_from_folder(episode_dir: Path) -> EpisodeRecord | None:
    """Read an episode folder back into a record; ``None`` while it has no outcome yet."""
    result = _load(episode_dir / "result.json")
    metadata = _load(episode_dir / "metadata.json") or {}
    extra = metadata.get("extra")
    hygiene = extra.get("intel_hygiene") if isinstance(extra, dict) else None
    fresh_pct = hygiene.get("fresh_pct") if isinstance(hygiene, dict) else None
    fresh = float(fresh_pct) if isinstance(fresh_pct, (int, float)) else None
    if result is not None:
        status = result.get("status")
        if status not in ("success", "failed", "skipped"):
            status = "failed"

        def num(key: str) -> float:
            value = result.get(key) if result else None
            return float(value) if isinstance(value, (int, float)) else 0.0

        return EpisodeRecord(
            status=status,  # type: ignore[arg-type]
            pnl_usd=num("pnl_usd"),
            fees_usd=num("fees_usd"),
            gas_cost_usd=num("gas_cost_usd"),
            il_usd=num("il_usd"),
            # A skipped episode deployed nothing: no scalar was applied to anything.
            risk_scalar_applied=status != "skipped"
            and isinstance(result.get("risk_scalar_applied"), (int, float)),
            fresh_pct=fresh,
        )
    if (episode_dir / "failure.json").exists():
        return EpisodeRecord(status="failed", fresh_pct=fresh)
    return None


def summarize_folders(layout: RunLayout, now: datetime) -> MetricsSummary:
    """Recompute the summary from the episode folders on disk (recovery, validation)."""
    records = [r for d in layout.episode_dirs() if (r := record_from_folder(d)) is not None]
    return summarize(layout.run_id, records, now)
