"""The trigger ledger ``<data_dir>/dune_triggers.ledger.db``: what the daemon has accepted.

One SQLite database holds, for the trigger tail and the episode workers:

* the tail's **position** in the trigger file (device, inode, offset, line number);
* every **accepted trigger** (its id, type, count, the line as parsed) and, for a refresh,
  whether it has run;
* every **episode created for a trigger** (run, episode, state).

Exactly once. A batch of lines is accepted in *one transaction together with the position
after it*: a kill before the commit re-reads the batch, a kill after it never does, so no line
is accepted twice or skipped (ids are deduplicated on top, for writers that append again). An
accepted ``episodes`` trigger is pending until it has ``count`` episodes: a worker *claims* an
episode (durably) before the episode's folder is created and marks it finished afterwards; at
start :meth:`TriggerLedger.reconcile` releases claims whose folder never appeared (the process
died in between) and keeps the others (recovery completes those folders). Pending work is
``count`` minus the episodes claimed, so an episode is never run twice and never dropped. A
refresh is at least once: it is marked done when it has run, and re-run after a restart if not.

Corruption. A ledger SQLite cannot read is moved aside (``<name>.corrupt-<UTC time>``) and a new
one started *at the end* of the current trigger file: re-reading the file from the start could
run old ``episodes`` triggers again (real money in real mode), so lines appended while the
ledger was unreadable must be appended again; the warning says so.

Blocking: every method does SQLite I/O (fsync when ``durable``); async callers use
``asyncio.to_thread``. One process owns a data dir (``service.datadir_lock``); the connection is
shared by threads under a lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import orjson
import structlog

from clmmd.artifacts.base.clock import parse_utc, utc_iso
from clmmd.artifacts.writer import move_aside
from clmmd.scheduler.trigger_lines import EpisodesTrigger, RefreshTrigger, Trigger
from clmmd.scheduler.trigger_position import (
    LEGACY_OFFSET_FILENAME,
    FileId,
    Position,
    load_legacy_position,
    remove_stale_temps,
)
from clmmd.scheduler.triggers import TRIGGER_FILENAME

log = structlog.get_logger(__name__)

LEDGER_FILENAME = "dune_triggers.ledger.db"
#: Ids are remembered this long after their trigger completed (a writer's retry window).
DEFAULT_KEEP_S = 7 * 24 * 3600
_AUTO_PREFIX = "auto-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS position (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, offset INTEGER NOT NULL, line_no INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS triggers (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('refresh', 'episodes')),
    count INTEGER NOT NULL,
    line BLOB NOT NULL,
    accepted_at TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX IF NOT EXISTS triggers_open ON triggers (type, done_at);
CREATE TABLE IF NOT EXISTS episodes (
    run_id TEXT NOT NULL,
    episode_id TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'finished', 'lost', 'interrupted')),
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (run_id, episode_id)
);
CREATE INDEX IF NOT EXISTS episodes_by_trigger ON episodes (trigger_id);
"""

EpisodeEnd = Literal["finished", "lost"]


class LedgerError(Exception):
    """The ledger cannot be opened or written (the message says why)."""


@dataclass(frozen=True)
class PendingEpisodes:
    """An accepted ``episodes`` trigger with episodes still to create."""

    trigger_id: str
    remaining: int


@dataclass(frozen=True)
class LedgerCounts:
    """What the ledger holds, for status and tests."""

    triggers: int
    refreshes_pending: int
    episodes_pending: int
    episodes_claimed: int
    episodes_lost: int


def ledger_path(data_dir: Path) -> Path:
    return Path(data_dir) / LEDGER_FILENAME


class TriggerLedger:
    """See the module docstring. Open with :meth:`open`; every method blocks."""

    def __init__(self, path: Path, connection: sqlite3.Connection, *, durable: bool) -> None:
        self.path = path
        self.durable = durable
        self._db = connection
        self._lock = threading.Lock()

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path, now: datetime, *, durable: bool = True) -> TriggerLedger:
        """Open (or create) the ledger of ``data_dir``; a corrupt one is moved aside.

        A new ledger takes over the position of the legacy ``dune_triggers.offset.json`` when
        there is one. :class:`LedgerError` when the data dir cannot hold a ledger at all.
        """
        path = ledger_path(data_dir)
        existed = path.exists()
        try:
            ledger = cls(path, _connect(path, durable), durable=durable)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or not existed:
                raise LedgerError(f"cannot open the trigger ledger {path}: {exc}") from exc
            moved_to = move_aside(path, now, companions=("-wal", "-shm"))
            ledger = cls(path, _connect(path, durable), durable=durable)
            end = ledger._start_at_end_of_trigger_file(Path(data_dir))
            log.warning(
                "trigger_ledger_corrupt",
                path=str(path),
                moved_to=str(moved_to),
                error=str(exc),
                resumed_at_offset=end,
                hint=(
                    "accepted triggers not yet run are in the moved file; lines appended while "
                    "the ledger was unreadable were skipped: append them again"
                ),
            )
            return ledger
        if not existed:
            ledger._import_legacy_position(Path(data_dir))
        return ledger

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- the tail's side ------------------------------------------------------------------

    def position(self) -> Position | None:
        """Where the tail resumes: the start of the first line not yet accepted."""
        with self._lock:
            row = self._db.execute("SELECT dev, ino, offset, line_no FROM position").fetchone()
        return None if row is None else Position(FileId(row[0], row[1]), row[2], row[3])

    def accept(
        self, triggers: Sequence[Trigger], position: Position, now: datetime
    ) -> list[Trigger | None]:
        """Record ``triggers`` and the position after them in one transaction.

        Returns, in order, each trigger as accepted (an id-less line gets an ``auto-`` id) or
        ``None`` for an id the ledger already holds (a duplicate)."""
        accepted: list[Trigger | None] = []
        stamp = utc_iso(now)
        with self._transaction() as db:
            for trigger in triggers:
                if trigger.id is None:
                    trigger = _with_id(trigger, _AUTO_PREFIX + uuid.uuid4().hex[:20])
                assert trigger.id is not None
                cursor = db.execute(
                    "INSERT OR IGNORE INTO triggers (id, type, count, line, accepted_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (trigger.id, _kind(trigger), _count(trigger), _encode(trigger), stamp),
                )
                accepted.append(trigger if cursor.rowcount == 1 else None)
            _save_position(db, position)
        return accepted

    def save_position(self, position: Position) -> None:
        """Move the position without accepting anything (rejected lines, truncation)."""
        with self._transaction() as db:
            _save_position(db, position)

    # -- refreshes ------------------------------------------------------------------------

    def refresh_done(self, trigger_ids: Sequence[str], now: datetime) -> None:
        """The refresh asked for by ``trigger_ids`` has run (one transaction)."""
        stamp = utc_iso(now)
        with self._transaction() as db:
            db.executemany(
                "UPDATE triggers SET done_at = ? WHERE id = ? AND done_at IS NULL",
                [(stamp, trigger_id) for trigger_id in trigger_ids],
            )

    def pending_refreshes(self) -> list[RefreshTrigger]:
        """Accepted refresh triggers that have not run (a restart runs them again)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT line FROM triggers WHERE type = 'refresh' AND done_at IS NULL"
                " ORDER BY rowid"
            ).fetchall()
        return [t for (line,) in rows if isinstance(t := _decode(line), RefreshTrigger)]

    # -- episodes -------------------------------------------------------------------------

    def pending_episodes(self) -> list[PendingEpisodes]:
        """Accepted ``episodes`` triggers with episodes still to create, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT t.id, t.count - (SELECT COUNT(*) FROM episodes e WHERE e.trigger_id = t.id)"
                " FROM triggers t WHERE t.type = 'episodes' AND t.done_at IS NULL ORDER BY t.rowid"
            ).fetchall()
        return [PendingEpisodes(trigger_id, left) for trigger_id, left in rows if left > 0]

    def claim_episode(self, trigger_id: str, run_id: str, episode_id: str, now: datetime) -> bool:
        """Take one episode of ``trigger_id`` for ``run_id/episode_id`` before its folder is
        created. False (nothing claimed) when the trigger has no episode left."""
        stamp = utc_iso(now)
        with self._transaction() as db:
            row = db.execute(
                "SELECT t.count - (SELECT COUNT(*) FROM episodes e WHERE e.trigger_id = t.id)"
                " FROM triggers t WHERE t.id = ? AND t.type = 'episodes' AND t.done_at IS NULL",
                (trigger_id,),
            ).fetchone()
            if row is None or row[0] <= 0:
                return False
            db.execute(
                "INSERT INTO episodes (run_id, episode_id, trigger_id, state, claimed_at)"
                " VALUES (?, ?, ?, 'claimed', ?)",
                (run_id, episode_id, trigger_id, stamp),
            )
            if row[0] == 1:  # that was the last one
                db.execute("UPDATE triggers SET done_at = ? WHERE id = ?", (stamp, trigger_id))
        return True

    def end_episode(self, run_id: str, episode_id: str, state: EpisodeEnd) -> None:
        """The claimed episode ended: ``finished`` (it has a folder) or ``lost`` (it could not
        even get one, e.g. a full disk; it is not run again)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE episodes SET state = ? WHERE run_id = ? AND episode_id = ?",
                (state, run_id, episode_id),
            )

    def release_episode(self, run_id: str, episode_id: str) -> None:
        """Give a claimed episode back: it never got its folder (a full disk) and is owed
        again, to be claimed under a new episode id."""
        with self._transaction() as db:
            _release(db, run_id, episode_id)

    def reconcile(self, folder_exists: Callable[[str, str], bool]) -> tuple[int, int]:
        """After a crash: claims whose episode folder exists became ``interrupted`` (recovery
        completes the folder); the others are released and run again. Call only while no
        other process can claim (the data-dir lock). Returns (kept, released)."""
        with self._lock:
            claims = self._db.execute(
                "SELECT run_id, episode_id, trigger_id FROM episodes WHERE state = 'claimed'"
            ).fetchall()
        exists = {(r, e): folder_exists(r, e) for r, e, _ in claims}
        kept = [(r, e) for r, e, _ in claims if exists[(r, e)]]
        released = [(r, e, t) for r, e, t in claims if not exists[(r, e)]]
        with self._transaction() as db:
            db.executemany(
                "UPDATE episodes SET state = 'interrupted' WHERE run_id = ? AND episode_id = ?",
                kept,
            )
            for run_id, episode_id, _ in released:
                _release(db, run_id, episode_id)
        return len(kept), len(released)

    def episodes_of(self, trigger_id: str) -> list[tuple[str, str, str]]:
        """(run_id, episode_id, state) of every episode claimed for ``trigger_id``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, episode_id, state FROM episodes WHERE trigger_id = ?"
                " ORDER BY rowid",
                (trigger_id,),
            ).fetchall()
        return [(r, e, s) for r, e, s in rows]

    # -- housekeeping ---------------------------------------------------------------------

    def prune(self, now: datetime, keep_s: float = DEFAULT_KEEP_S) -> int:
        """Forget triggers completed more than ``keep_s`` ago (and their episodes); their ids
        may then be accepted again. Returns how many were forgotten."""
        cutoff = utc_iso(now - timedelta(seconds=keep_s))
        with self._transaction() as db:
            db.execute(
                "DELETE FROM episodes WHERE trigger_id IN"
                " (SELECT id FROM triggers WHERE done_at IS NOT NULL AND done_at < ?)"
                " AND state != 'claimed'",
                (cutoff,),
            )
            cursor = db.execute(
                "DELETE FROM triggers WHERE done_at IS NOT NULL AND done_at < ? AND NOT EXISTS"
                " (SELECT 1 FROM episodes e WHERE e.trigger_id = triggers.id)",
                (cutoff,),
            )
            return cursor.rowcount

    def counts(self) -> LedgerCounts:
        with self._lock:
            db = self._db
            triggers = db.execute("SELECT COUNT(*) FROM triggers").fetchone()[0]
            refreshes = db.execute(
                "SELECT COUNT(*) FROM triggers WHERE type = 'refresh' AND done_at IS NULL"
            ).fetchone()[0]
            claimed, lost = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(state = 'lost'), 0) FROM episodes"
            ).fetchone()
        pending = sum(p.remaining for p in self.pending_episodes())
        return LedgerCounts(triggers, refreshes, pending, claimed, lost)

    # -- internals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    def _import_legacy_position(self, data_dir: Path) -> None:
        legacy = data_dir / LEGACY_OFFSET_FILENAME
        saved, problem = load_legacy_position(legacy)
        if saved is not None:
            self.save_position(saved)
            log.info("trigger_position_imported", path=str(legacy), offset=saved.offset)
        elif problem is not None:
            log.warning("trigger_offset_corrupt", path=str(legacy), error=problem)
        with contextlib.suppress(OSError):
            legacy.unlink()
        remove_stale_temps(legacy)

    def _start_at_end_of_trigger_file(self, data_dir: Path) -> int | None:
        try:
            info = os.stat(data_dir / TRIGGER_FILENAME)
        except OSError:
            return None
        with open(data_dir / TRIGGER_FILENAME, "rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))
        self.save_position(Position(FileId(info.st_dev, info.st_ino), info.st_size, lines))
        return info.st_size


def read_position(data_dir: Path) -> Position | None:
    """The saved position, read by another process (``clmmd status``); None when unknown."""
    path = ledger_path(data_dir)
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            row = db.execute("SELECT dev, ino, offset, line_no FROM position").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return None if row is None else Position(FileId(row[0], row[1]), row[2], row[3])


def _connect(path: Path, durable: bool) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process; FULL also survives a power cut.
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        (check,) = db.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        db.executescript(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def _release(db: sqlite3.Connection, run_id: str, episode_id: str) -> None:
    key = (run_id, episode_id)
    row = db.execute(
        "SELECT trigger_id FROM episodes WHERE run_id = ? AND episode_id = ?", key
    ).fetchone()
    if row is not None:
        db.execute("DELETE FROM episodes WHERE run_id = ? AND episode_id = ?", key)
        db.execute("UPDATE triggers SET done_at = NULL WHERE id = ?", (row[0],))


def _save_position(db: sqlite3.Connection, position: Position) -> None:
    db.execute(
        "INSERT INTO position (one, dev, ino, offset, line_no) VALUES (1, ?, ?, ?, ?)"
        " ON CONFLICT (one) DO UPDATE SET dev = excluded.dev, ino = excluded.ino,"
        " offset = excluded.offset, line_no = excluded.line_no",
        (position.file.dev, position.file.ino, position.offset, position.line_no),
    )


def _kind(trigger: Trigger) -> str:
    return "refresh" if isinstance(trigger, RefreshTrigger) else "episodes"


def _count(trigger: Trigger) -> int:
    return trigger.count if isinstance(trigger, EpisodesTrigger) else 1


def _with_id(trigger: Trigger, trigger_id: str) -> Trigger:
    return dataclasses.replace(trigger, id=trigger_id)


def _encode(trigger: Trigger) -> bytes:
    ts = utc_iso(trigger.ts) if trigger.ts is not None else None
    if isinstance(trigger, RefreshTrigger):
        return orjson.dumps(
            {
                "id": trigger.id,
                "ts": ts,
                "type": "refresh",
                "reason": trigger.reason,
                "pool_address": trigger.pool_address,
                "priorities": list(trigger.priorities),
                "line_no": trigger.line_no,
                "offset": trigger.offset,
            }
        )
    return orjson.dumps(
        {
            "id": trigger.id,
            "ts": ts,
            "type": "episodes",
            "count": trigger.count,
            "line_no": trigger.line_no,
            "offset": trigger.offset,
        }
    )


def _decode(line: bytes) -> Trigger | None:
    try:
        value = orjson.loads(line)
        ts = parse_utc(value["ts"]) if value.get("ts") else None
        if value["type"] == "refresh":
            return RefreshTrigger(
                value["id"],
                ts,
                value["reason"],
                value["pool_address"],
                tuple(value["priorities"]),
                value["line_no"],
                value["offset"],
            )
        return EpisodesTrigger(value["id"], value["count"], value["line_no"], value["offset"], ts)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


__all__ = [
    "DEFAULT_KEEP_S",
    "LEDGER_FILENAME",
    "LedgerCounts",
    "LedgerError",
    "PendingEpisodes",
    "TriggerLedger",
    "ledger_path",
    "read_position",
]
