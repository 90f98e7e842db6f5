"""What ``clmmd campaign`` says when it ends: text on a terminal, one JSON log line elsewhere.

Both carry the same facts: counts, the seed (random unless given, so it is what repeats the
run), the PnL decomposition ``PnL = HODL return − IL + fees − gas`` over the episodes, where the
artifacts and the log went, and the commands to inspect the run (with the options they need).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clmmd.service.cli.console import Console
from clmmd.service.config import Settings
from clmmd.service.runs.campaign import CampaignReport


@dataclass(frozen=True)
class CampaignSummary:
    run_id: str
    run_dir: Path
    seed: int
    requested: int
    finished: int
    successful: int
    failed: int
    skipped: int
    lost: int
    pnl_usd: float
    hodl_return_usd: float | None
    il_usd: float
    fees_usd: float
    gas_usd: float
    log_file: Path | None
    inspect: tuple[str, ...]
    repeat: str
    #: Set when a stop (Ctrl-C, SIGTERM, a full disk) ended the campaign early.
    interrupted_by: str | None = None
    interrupted: int = 0
    not_started: int = 0
    last_loss: str | None = None

    def decomposition(self) -> str:
        """``PnL … = HODL return … − IL … + fees … − gas …`` (USD, over the finished episodes)."""
        hodl = "?" if self.hodl_return_usd is None else f"{self.hodl_return_usd:,.2f}"
        return (
            f"PnL {self.pnl_usd:,.2f} USD = HODL return {hodl} − IL {self.il_usd:,.2f} "
            f"+ fees {self.fees_usd:,.2f} − gas {self.gas_usd:,.2f}"
        )

    def text(self) -> str:
        """The lines a person reads at the end of a campaign on a terminal."""
        head = f"campaign {self.run_id}:"
        if self.interrupted_by is not None:
            head = (
                f"campaign {self.run_id} interrupted by {self.interrupted_by}: "
                f"{self.interrupted} running episode(s) completed as interrupted, "
                f"{self.not_started} not started;"
            )
        lines = [
            f"{head} {self.finished}/{self.requested} episodes "
            f"({self.successful} successful, {self.failed} failed, {self.skipped} skipped, "
            f"{self.lost} lost), seed {self.seed}",
            self.decomposition(),
            f"artifacts: {self.run_dir}/",
        ]
        if self.last_loss is not None:
            lines.insert(1, f"lost:      {self.last_loss} (check disk space of the data dir)")
        if self.log_file is not None:
            lines.append(f"log:       {self.log_file}")
        lines.append(f"inspect:   {'   |   '.join(self.inspect)}")
        lines.append(f"again:     {self.repeat}")
        return "\n".join(lines)

    def fields(self) -> dict[str, Any]:
        """The same facts as log-line fields (``campaign_summary``)."""
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "seed": self.seed,
            "requested": self.requested,
            "episodes": self.finished,
            "successful": self.successful,
            "failed": self.failed,
            "skipped": self.skipped,
            "lost": self.lost,
            "pnl_usd": round(self.pnl_usd, 6),
            "hodl_return_usd": (
                None if self.hodl_return_usd is None else round(self.hodl_return_usd, 6)
            ),
            "il_usd": round(self.il_usd, 6),
            "fees_usd": round(self.fees_usd, 6),
            "gas_usd": round(self.gas_usd, 6),
            "inspect": list(self.inspect),
            "again": self.repeat,
            "interrupted_by": self.interrupted_by,
            "interrupted": self.interrupted,
            "not_started": self.not_started,
            "last_loss": self.last_loss,
        }


def campaign_summary(
    result: CampaignReport, settings: Settings, console: Console, log_file: Path | None
) -> CampaignSummary:
    """Fold a finished campaign into what is shown of it."""
    records = result.records
    hodl = [r.hodl_return_usd for r in records if r.status == "success"]
    return CampaignSummary(
        run_id=result.run_id,
        run_dir=result.run_dir,
        seed=result.seed,
        requested=result.requested,
        finished=len(records),
        successful=sum(r.status == "success" for r in records),
        failed=sum(r.status == "failed" for r in records),
        skipped=sum(r.status == "skipped" for r in records),
        lost=len(result.lost),
        pnl_usd=sum(r.pnl_usd for r in records),
        hodl_return_usd=None if None in hodl else sum(h for h in hodl if h is not None),
        il_usd=sum(r.il_usd for r in records),
        fees_usd=sum(r.fees_usd for r in records),
        gas_usd=sum(r.gas_cost_usd for r in records),
        log_file=log_file,
        inspect=(
            console.command(settings, "runs", "show", result.run_id),
            console.command(settings, "report", result.run_id),
        ),
        repeat=console.command(
            settings, "campaign", "--episodes", str(result.requested), "--seed", str(result.seed)
        ),
        interrupted_by=result.interrupted_by,
        interrupted=len(result.interrupted),
        not_started=result.not_started,
        last_loss=result.lost[-1] if result.lost else None,
    )
