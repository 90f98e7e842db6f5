"""Keeping metrics_summary.json current without one durable write per episode.

Episodes ending together are folded into one rewrite: while a write is in flight, or within
``min_interval_s`` of the last one, further episodes only mark the summary dirty; the writer
then rewrites once with everything. ``close()`` writes what is pending at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord, SummaryAccumulator

log = structlog.get_logger(__name__)

#: At most this often under load: the summary lags the folders by well under a second, and a
#: fast campaign does not pay a durable rewrite (fsync + rename + dir fsync) per episode.
DEFAULT_MIN_INTERVAL_S = 0.25


class SummaryWriter:
    """Running totals of a run, rewritten atomically (coalesced) as episodes end."""

    def __init__(
        self, store: ArtifactStore, clock: Clock, *, min_interval_s: float = DEFAULT_MIN_INTERVAL_S
    ) -> None:
        self.store = store
        self.clock = clock
        self.min_interval_s = min_interval_s
        self.totals = SummaryAccumulator()
        self.writes = 0
        self._dirty = False
        self._closing = asyncio.Event()
        self._last_write: float | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, record: EpisodeRecord) -> None:
        self.totals.add(record)
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="summary-writer")

    async def _pause(self) -> None:
        """Wait out the minimum interval since the last write, unless closing."""
        if self._last_write is None or self._closing.is_set():
            return
        remaining = self._last_write + self.min_interval_s - self.clock.monotonic()
        if remaining <= 0:
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(remaining))
        closer = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({sleeper, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeper, closer):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter

    async def _flush(self) -> None:
        while self._dirty:
            await self._pause()
            self._dirty = False
            summary = self.totals.summary(self.store.layout.run_id, self.clock.now())
            self._last_write = self.clock.monotonic()
            try:
                await asyncio.to_thread(self.store.write_summary, summary)
                self.writes += 1
            except OSError as exc:
                log.error(
                    "summary_write_failed",
                    error=str(exc),
                    hint="check disk space; the summary is rewritten at the next episode",
                )

    async def close(self) -> None:
        """Write what is pending now (shielded: a cancelled caller still gets it on disk)."""
        self._closing.set()
        if self._task is not None:
            await asyncio.shield(self._task)
