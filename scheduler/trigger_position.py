"""Where the trigger tail resumes after a restart, and what to make of a saved position.

The position (file identity, offset and line number of the next unread line) is saved in the
trigger ledger together with the lines accepted before it (:mod:`scheduler.trigger_ledger`).
:func:`resume_point` decides, purely, whether a saved position still applies to the file the
path names now: same (device, inode) and an offset that fits → resume there; another file
(rotated while stopped) or a shorter one (truncated) → start at 0.

Earlier versions kept the position in ``dune_triggers.offset.json`` (replaced atomically
through a temp file); :func:`load_legacy_position` reads it once when a ledger is created, and
:func:`remove_stale_temps` removes what a kill during such a replace left behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

import orjson

from clmmd.artifacts.writer import TEMP_MARKER

LEGACY_OFFSET_FILENAME = "dune_triggers.offset.json"
_FIELDS = ("dev", "ino", "offset", "line_no")


class FileId(NamedTuple):
    """Which file a path names: a rename keeps it, a new file (rotation) changes it."""

    dev: int
    ino: int


class Position(NamedTuple):
    """The start of the next unread line of ``file``."""

    file: FileId
    offset: int
    line_no: int


ResumeNote = Literal["resumed", "fresh", "rotated_while_stopped", "truncated_while_stopped"]


def resume_point(saved: Position | None, file_id: FileId, size: int) -> tuple[int, int, ResumeNote]:
    """(offset, line_no, why) to start reading ``file_id`` (``size`` bytes now) at."""
    if saved is None:
        return 0, 0, "fresh"
    if saved.file != file_id:
        return 0, 0, "rotated_while_stopped"
    if saved.offset > size:
        return 0, 0, "truncated_while_stopped"
    return saved.offset, saved.line_no, "resumed"


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of ``path``'s atomic replace left by earlier (killed) processes."""
    mine = f"{TEMP_MARKER}{os.getpid()}-"
    for temp in path.parent.glob(f".{path.name}{TEMP_MARKER}*"):
        if mine not in temp.name:
            with contextlib.suppress(OSError):
                temp.unlink()


def load_legacy_position(path: Path) -> tuple[Position | None, str | None]:
    """(position saved in a legacy offset file or None, why it is unusable or None)."""
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
    return Position(FileId(value["dev"], value["ino"]), value["offset"], value["line_no"]), None
