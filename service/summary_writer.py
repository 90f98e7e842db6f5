"""Keeping metrics_summary.json current without one durable write per episode.

Episodes ending together are folded into one rewrite: while a write is in flight, further
episodes only mark the summary dirty, and the writer rewrites once more when it finishes.
"""

from __future__ import annotations

import asyncio

import structlog

from artifacts.store import ArtifactStore
from artifacts.summary import EpisodeRecord, SummaryAccumulator
from service.clock import Clock

log = structlog.get_logger(__name__)


class SummaryWriter:
    """Running totals of a run, rewritten atomically (coalesced) as episodes end."""

    def __init__(self, store: ArtifactStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.totals = SummaryAccumulator()
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def add(self, record: EpisodeRecord) -> None:
        self.totals.add(record)
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="summary-writer")

    async def _flush(self) -> None:
        while self._dirty:
            self._dirty = False
            summary = self.totals.summary(self.store.layout.run_id, self.clock.now())
            try:
                await asyncio.to_thread(self.store.write_summary, summary)
            except OSError as exc:
                log.error(
                    "summary_write_failed",
                    error=str(exc),
                    hint="check disk space; the summary is rewritten at the next episode",
                )

    async def close(self) -> None:
        """Wait for the last rewrite (shielded: a cancelled caller still gets it on disk)."""
        if self._task is not None:
            await asyncio.shield(self._task)
