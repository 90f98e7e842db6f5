"""Where the trigger tail resumes after a restart: ``dune_triggers.offset.json``.

After every batch the tail saves ``{"dev", "ino", "offset", "line_no"}`` of the next unread
line (temp + fsync + rename, in a worker thread). On start it resumes there when (dev, ino)
still name the trigger file and the offset fits in it; otherwise it starts at 0. A missing or
corrupt offset file makes the tail read the file from the start: it never skips triggers, and
ids (deduplicated in the cache) keep the replay from dispatching a trigger twice; lines without
an id may then be dispatched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import structlog

from clmmd.artifacts.writer import TEMP_MARKER, replace_json

log = structlog.get_logger(__name__)

OFFSET_FILENAME = "dune_triggers.offset.json"
_FIELDS = ("dev", "ino", "offset", "line_no")


class FileId(NamedTuple):
    """Which file a path names: a rename keeps it, a new file (rotation) changes it."""

    dev: int
    ino: int


class PositionFile:
    """The saved position of one trigger file's tail."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: dict[str, int] | None = None  # what the file holds, to skip rewriting it

    async def resume_point(self, file_id: FileId, size: int) -> tuple[int, int]:
        """(offset, line_no) to start reading ``file_id`` (``size`` bytes now) at: the saved
        position when it still names that file and fits in it, else (0, 0)."""
        # A kill during a position write leaves its temp file; nothing else removes it.
        await asyncio.to_thread(remove_stale_temps, self.path)
        saved, problem = await asyncio.to_thread(load_position, self.path)
        if problem is not None:
            log.warning(
                "trigger_offset_corrupt",
                path=str(self.path),
                error=problem,
                action="reading the trigger file from the start; ids prevent repeats",
            )
        if saved is None:
            return 0, 0
        if (saved["dev"], saved["ino"]) != file_id:
            log.info("trigger_file_rotated", previous_ino=saved["ino"], while_stopped=True)
        elif saved["offset"] > size:
            log.warning("trigger_file_truncated", offset=saved["offset"], size=size)
        else:
            return saved["offset"], saved["line_no"]
        return 0, 0

    async def save(self, file_id: FileId, offset: int, line_no: int) -> None:
        """Save the position of the next unread line (nothing when it is already saved)."""
        position = {"dev": file_id.dev, "ino": file_id.ino, "offset": offset, "line_no": line_no}
        if position == self._saved:
            return
        try:
            await asyncio.to_thread(replace_json, self.path, position)
        except OSError as exc:  # a replay after restart is deduplicated by id
            log.warning("trigger_offset_write_failed", error=str(exc))
            return
        self._saved = position

    def forget_saved(self) -> None:
        """Make the next :meth:`save` write whatever it is given (after a rotation)."""
        self._saved = None


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of ``path``'s atomic replace left by earlier (killed) processes."""
    mine = f"{TEMP_MARKER}{os.getpid()}-"
    for temp in path.parent.glob(f".{path.name}{TEMP_MARKER}*"):
        if mine not in temp.name:
            with contextlib.suppress(OSError):
                temp.unlink()


def load_position(path: Path) -> tuple[dict[str, int] | None, str | None]:
    """(saved position or None, why the file is unusable or None)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, str(exc)
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(value, dict) or any(
        isinstance(value.get(n), bool) or not isinstance(value.get(n), int) or value[n] < 0
        for n in _FIELDS
    ):
        return None, f"expected non-negative integers {', '.join(_FIELDS)}"
    return {n: value[n] for n in _FIELDS}, None
