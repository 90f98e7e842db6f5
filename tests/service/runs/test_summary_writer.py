from __future__ import annotations

from pathlib import Path

import orjson

from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import MetricsSummary
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.service.runs.summary_writer import SummaryWriter


class CountingStore(ArtifactStore):
    writes = 0

    def write_summary(self, summary: MetricsSummary) -> None:
        self.writes += 1
        super().write_summary(summary)


async def test_bursts_are_coalesced_and_the_last_state_lands(tmp_path: Path) -> None:
    store = CountingStore(RunLayout(tmp_path, "run_20260101_000000_abcd"), durable=False)
    store.open_run()
    writer = SummaryWriter(store, FakeClock())
    for i in range(200):
        writer.add(EpisodeRecord(status="success" if i % 4 else "failed", pnl_usd=1.0))
    await writer.close()
    on_disk = orjson.loads(store.layout.summary_path.read_bytes())
    assert (on_disk["episodes"], on_disk["successful"], on_disk["failed"]) == (200, 150, 50)
    assert on_disk["total_pnl_usd"] == 200.0
    assert 1 <= store.writes < 200


async def test_rewrites_are_spaced_and_close_writes_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    store = CountingStore(RunLayout(tmp_path, "run_20260101_000000_abcd"), durable=False)
    store.open_run()
    writer = SummaryWriter(store, clock, min_interval_s=10.0)
    writer.add(EpisodeRecord(status="success"))
    await writer._task  # type: ignore[misc]
    assert store.writes == 1
    before = clock.monotonic()
    writer.add(EpisodeRecord(status="success"))
    await writer._task  # type: ignore[misc]
    assert store.writes == 2
    assert clock.monotonic() - before >= 10.0 - 1e-9  # waited out the interval (fake time)
    writer.add(EpisodeRecord(status="failed"))
    before_close = clock.monotonic()
    await writer.close()  # closing does not wait for the interval
    assert clock.monotonic() - before_close < 10.0
    on_disk = orjson.loads(store.layout.summary_path.read_bytes())
    assert (on_disk["episodes"], on_disk["failed"]) == (3, 1)
