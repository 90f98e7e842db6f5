"""``EpisodeWrite``: one step's files for an episode folder, encoded and ready for the disk.

An episode hands its files to the disk a batch at a time: optionally the folder itself (with
its proposal.json), then lines for logs.jsonl and the artifacts, in order. The batch is plain
bytes and paths, built by the caller (where the models are) and applied by
:func:`apply_episode_write` wherever the blocking calls run: a thread of this process or a
writer process (``clmmd.artifacts.write_worker``), which is why it pickles cheaply and carries
no model, lock or file handle.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from clmmd.artifacts.writer import append_unlocked, create_episode_dir, write_files_new


class EpisodeWrite(NamedTuple):
    """What one blocking call writes for ``episode_id`` under ``episodes_dir`` (a tuple: it
    pickles fast, and a writer process imports nothing more to read it)."""

    episodes_dir: Path
    episode_id: str
    #: proposal.json: the folder is made with it first (atomically), before anything else.
    proposal: bytes | None = None
    #: Appended to logs.jsonl (whole lines) before the files.
    logs: bytes = b""
    #: ``(name, data)`` created in order, never overwriting (one directory fsync if durable).
    files: tuple[tuple[str, bytes], ...] = ()
    durable: bool = True

    @property
    def folder(self) -> Path:
        return self.episodes_dir / self.episode_id

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.files)


class FolderNotMadeError(Exception):
    """The folder of an :class:`EpisodeWrite` could not be made (``error`` says why): nothing
    of the batch was written, the episode has nowhere to record anything."""

    def __init__(self, error: BaseException) -> None:
        # ``error`` is the only argument, so the exception pickles back from a writer process.
        super().__init__(error)
        self.error = error

    def __str__(self) -> str:
        return str(self.error)


def apply_episode_write(write: EpisodeWrite) -> None:
    """Write ``write`` (blocking; fsyncs when durable).

    Raises :class:`FolderNotMadeError` when the folder was to be made and could not be (then
    nothing of the batch exists); any other error leaves the files before it in place (each
    is whole).
    """
    if write.proposal is not None:
        # The folder appears with the whole batch (one rename, no per-file temporary names).
        try:
            create_episode_dir(
                write.episodes_dir,
                write.episode_id,
                write.proposal,
                durable=write.durable,
                files=write.files,
                logs=write.logs,
            )
        except Exception as exc:
            raise FolderNotMadeError(exc) from exc
        return
    if write.logs:
        append_unlocked(write.folder / "logs.jsonl", write.logs)
    write_files_new(write.folder, write.files, durable=write.durable)
