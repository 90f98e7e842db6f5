"""``ArtifactStore``: the one way an episode's files get written.

Synchronous on purpose (fsync blocks); the episode runner calls it through
``asyncio.to_thread`` so the event loop never waits on the disk.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import LogLine, MetricsSummary
from clmmd.artifacts.writer import (
    append_unlocked,
    create_episode_dir,
    dumps,
    replace_json,
    write_files_new,
)


class ArtifactStore:
    """Writes one run's artifacts under its :class:`RunLayout`."""

    def __init__(self, layout: RunLayout, *, durable: bool = True) -> None:
        self.layout = layout
        self.durable = durable
        self._summary_lock = threading.Lock()

    def open_run(self) -> None:
        """Create the run's folders (idempotent)."""
        self.layout.episodes_dir.mkdir(parents=True, exist_ok=True)

    def create_episode(self, episode_id: str, proposal: BaseModel) -> Path:
        """Make the episode folder appear atomically, holding its proposal.json."""
        return create_episode_dir(
            self.layout.episodes_dir, episode_id, proposal, durable=self.durable
        )

    def write(self, episode_id: str, name: str, artifact: BaseModel) -> None:
        """Write ``name`` (e.g. ``result.json``) once; refuses to overwrite."""
        self.write_batch(episode_id, [], [(name, artifact)])

    def has(self, episode_id: str, name: str) -> bool:
        """Whether the episode's ``name`` exists (after a failed batch: which files landed)."""
        return (self.layout.episode_dir(episode_id) / name).exists()

    def append_log(self, episode_id: str, ts: str, event: str, payload: dict[str, Any]) -> None:
        """Append one ``{"ts","event","payload"}`` line to the episode's logs.jsonl."""
        self.write_batch(episode_id, [LogLine(ts=ts, event=event, payload=payload)], [])

    def write_batch(
        self,
        episode_id: str,
        logs: list[LogLine],
        artifacts: list[tuple[str, BaseModel]],
    ) -> None:
        """Append ``logs`` (one write), then write ``artifacts`` in order (one directory fsync).

        One call per step keeps an episode to a few thread hops instead of one per file. The
        log append takes no lock: an episode's logs.jsonl has one writer, its own episode task
        (one process owns a data dir; recovery never writes logs.jsonl).
        """
        folder = self.layout.episode_dir(episode_id)
        if logs:
            data = b"".join(orjson.dumps(line.model_dump(mode="json")) + b"\n" for line in logs)
            append_unlocked(folder / "logs.jsonl", data)
        encoded = [(name, dumps(artifact)) for name, artifact in artifacts]
        write_files_new(folder, encoded, durable=self.durable)

    def write_summary(self, summary: MetricsSummary) -> None:
        """Atomically replace metrics_summary.json (serialised: last writer has newest data)."""
        with self._summary_lock:
            replace_json(self.layout.summary_path, summary, durable=self.durable)
