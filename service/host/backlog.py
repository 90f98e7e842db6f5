"""The daemon's episodes waiting for a worker, in arrival order.

The durable truth is the trigger ledger (what each accepted ``episodes`` trigger still owes);
this is its in-memory view, so workers need not ask SQLite which episode comes next. Each entry
is a trigger id with the episodes it still owes (``None``: episodes not asked for by a trigger,
e.g. the interval schedule or a test, which are not persisted). A worker :meth:`take` s one
episode at a time and :meth:`give_back` s it when it could not be started, so it keeps its
place.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass
class _Entry:
    trigger_id: str | None
    remaining: int


class EpisodeBacklog:
    """A FIFO of owed episodes, grouped by trigger."""

    def __init__(self) -> None:
        self._entries: deque[_Entry] = deque()
        self._available = asyncio.Event()

    def add(self, trigger_id: str | None, count: int) -> None:
        """Owe ``count`` more episodes for ``trigger_id`` (at the back)."""
        if count <= 0:
            return
        self._entries.append(_Entry(trigger_id, count))
        self._available.set()

    def give_back(self, trigger_id: str | None) -> None:
        """Return one episode taken but not started: it goes first again."""
        head = self._entries[0] if self._entries else None
        if head is not None and head.trigger_id == trigger_id:
            head.remaining += 1
        else:
            self._entries.appendleft(_Entry(trigger_id, 1))
        self._available.set()

    def take_nowait(self) -> Owed | None:
        """One owed episode, or None when nothing is owed."""
        if not self._entries:
            return None
        head = self._entries[0]
        head.remaining -= 1
        if head.remaining == 0:
            self._entries.popleft()
        if not self._entries:
            self._available.clear()
        return Owed(head.trigger_id)

    async def take(self) -> Owed:
        """Wait for one owed episode."""
        while (owed := self.take_nowait()) is None:
            await self._available.wait()
        return owed

    def __len__(self) -> int:
        return sum(e.remaining for e in self._entries)


@dataclass(frozen=True)
class Owed:
    """One episode to run, and the trigger that asked for it (None: not a trigger's)."""

    trigger_id: str | None


__all__ = ["EpisodeBacklog", "Owed"]
