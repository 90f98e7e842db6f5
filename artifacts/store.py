"""``ArtifactStore``: the one way an episode's files get written.

Synchronous on purpose (fsync blocks). The episode runner encodes each step's files with
:meth:`ArtifactStore.episode_write` and applies the batch off the event loop: in a thread, or in
a writer process (``service.runs.writer_processes``), so the loop never waits on the disk.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from clmmd.artifacts.episode_write import EpisodeWrite, FolderNotMadeError, apply_episode_write
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import LogLine, MetricsSummary
from clmmd.artifacts.writer import dumps, replace_json


class ArtifactStore:
    """Writes one run's artifacts under its :class:`RunLayout`."""

    def __init__(self, layout: RunLayout, *, durable: bool = True) -> None:
        self.layout = layout
        self.durable = durable
        self._summary_lock = threading.Lock()

    def open_run(self) -> None:
        """Create the run's folders (idempotent)."""
        self.layout.episodes_dir.mkdir(parents=True, exist_ok=True)

    def episode_write(
        self,
        episode_id: str,
        *,
        proposal: BaseModel | None = None,
        logs: Sequence[LogLine] = (),
        artifacts: Sequence[tuple[str, BaseModel]] = (),
    ) -> EpisodeWrite:
        """Encode one step's files (the folder with ``proposal`` when given, ``logs`` for
        logs.jsonl, then ``artifacts`` in order) into a batch for :meth:`apply`.

        Encoding happens here, in the caller; applying the batch is only system calls, so it
        can run in a thread or in a writer process alike.
        """
        return EpisodeWrite(
            episodes_dir=self.layout.episodes_dir,
            episode_id=episode_id,
            proposal=None if proposal is None else dumps(proposal),
            logs=b"".join(orjson.dumps(line.model_dump(mode="json")) + b"\n" for line in logs),
            files=tuple((name, dumps(artifact)) for name, artifact in artifacts),
            durable=self.durable,
        )

    def apply(self, write: EpisodeWrite) -> None:
        """Write one encoded batch (blocking): see :func:`apply_episode_write`.

        The log append takes no lock: an episode's logs.jsonl has one writer, its own episode
        task (one process owns a data dir; recovery never writes logs.jsonl).
        """
        apply_episode_write(write)

    def create_episode(self, episode_id: str, proposal: BaseModel) -> Path:
        """Make the episode folder appear atomically, holding its proposal.json."""
        try:
            self.apply(self.episode_write(episode_id, proposal=proposal))
        except FolderNotMadeError as exc:
            raise exc.error from None
        return self.layout.episode_dir(episode_id)

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
        logs: Sequence[LogLine],
        artifacts: Sequence[tuple[str, BaseModel]],
    ) -> None:
        """Append ``logs`` (one write), then write ``artifacts`` in order (one directory fsync)."""
        self.apply(self.episode_write(episode_id, logs=logs, artifacts=artifacts))

    def write_summary(self, summary: MetricsSummary) -> None:
        """Atomically replace metrics_summary.json (serialised: last writer has newest data)."""
        with self._summary_lock:
            replace_json(self.layout.summary_path, summary, durable=self.durable)
