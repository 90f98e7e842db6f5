"""metrics_summary.json: totals of a run, folded from per-episode records (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import MetricsSummary

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
    # PnL = hodl_return − IL + fees − gas; None where the result did not record it.
    hodl_return_usd: float | None = None


def summarize(run_id: str, records: Iterable[EpisodeRecord], now: datetime) -> MetricsSummary:
    """Fold episode records into the run summary."""
    totals = SummaryAccumulator()
    for record in records:
        totals.add(record)
    return totals.summary(run_id, now)


class SummaryAccumulator:
    """Running totals, so a long-lived run updates its summary in O(1) per episode."""

    def __init__(self) -> None:
        self.counts = {"success": 0, "failed": 0, "skipped": 0}
        self.sums = {"pnl": 0.0, "fees": 0.0, "gas": 0.0, "il": 0.0, "hodl": 0.0}
        self.hodl_unknown = 0  # successful episodes whose result has no HODL return
        self.applied = 0
        self.fresh_total = 0.0
        self.fresh_n = 0

    @property
    def episodes(self) -> int:
        return sum(self.counts.values())

    def add(self, record: EpisodeRecord) -> None:
        self.counts[record.status] += 1
        self.sums["pnl"] += record.pnl_usd
        self.sums["fees"] += record.fees_usd
        self.sums["gas"] += record.gas_cost_usd
        self.sums["il"] += record.il_usd
        if record.hodl_return_usd is not None:
            self.sums["hodl"] += record.hodl_return_usd
        elif record.status == "success":
            self.hodl_unknown += 1
        self.applied += int(record.risk_scalar_applied)
        if record.fresh_pct is not None:
            self.fresh_total += record.fresh_pct
            self.fresh_n += 1

    def summary(self, run_id: str, now: datetime) -> MetricsSummary:
        return MetricsSummary(
            run_id=run_id,
            updated_at=now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            episodes=self.episodes,
            successful=self.counts["success"],
            failed=self.counts["failed"],
            skipped=self.counts["skipped"],
            total_pnl_usd=round(self.sums["pnl"], 6),
            total_fees_usd=round(self.sums["fees"], 6),
            total_gas_usd=round(self.sums["gas"], 6),
            total_il_usd=round(self.sums["il"], 6),
            total_hodl_return_usd=None if self.hodl_unknown else round(self.sums["hodl"], 6),
            risk_scalar_applied=f"{self.applied}/{self.episodes}",
            mean_fresh_pct=round(self.fresh_total / self.fresh_n, 2) if self.fresh_n else None,
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
            hodl_return_usd=_optional_number(result.get("hodl_return_usd")),
            # A skipped episode deployed nothing: no scalar was applied to anything.
            risk_scalar_applied=status != "skipped"
            and isinstance(result.get("risk_scalar_applied"), (int, float)),
            fresh_pct=fresh,
        )
    if (episode_dir / "failure.json").exists():
        return EpisodeRecord(status="failed", fresh_pct=fresh)
    return None


def _optional_number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize_folders(layout: RunLayout, now: datetime) -> MetricsSummary:
    """Recompute the summary from the episode folders on disk (recovery, validation)."""
    records = [r for d in layout.episode_dirs() if (r := record_from_folder(d)) is not None]
    return summarize(layout.run_id, records, now)
