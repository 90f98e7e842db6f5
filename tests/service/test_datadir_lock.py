from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.service.datadir_lock import (
    LOCK_FILENAME,
    DataDirBusy,
    DataDirLock,
    current_holder,
    describe_holder,
)


def test_one_owner_at_a_time(tmp_path: Path, clock: FakeClock) -> None:
    first = DataDirLock.acquire(tmp_path, "run", clock.now())
    info = orjson.loads((tmp_path / LOCK_FILENAME).read_bytes())
    assert info["command"] == "run"
    with pytest.raises(DataDirBusy) as busy:
        DataDirLock.acquire(tmp_path, "campaign (learning)", clock.now())
    assert f"in use by clmmd run (pid {info['pid']}, started {info['started_at']})" in str(
        busy.value
    )
    first.release()
    first.release()  # idempotent
    with DataDirLock.acquire(tmp_path, "run --once", clock.now()) as second:
        assert second.held
    assert not second.held


def test_a_lock_file_without_a_holder_is_still_described() -> None:
    assert describe_holder(b"") == "another clmmd process (its lock file names no holder)"


def test_the_current_holder_is_read_without_taking_the_lock(
    tmp_path: Path, clock: FakeClock
) -> None:
    assert current_holder(tmp_path) is None  # no lock file yet
    with DataDirLock.acquire(tmp_path, "run", clock.now()):
        info = orjson.loads((tmp_path / LOCK_FILENAME).read_bytes())
        holder = current_holder(tmp_path)
        assert holder == f"clmmd run (pid {info['pid']}, started {info['started_at']})"
        # Asking did not take the lock: the owner still has it alone.
        with pytest.raises(DataDirBusy):
            DataDirLock.acquire(tmp_path, "campaign (learning)", clock.now())
    # Released: the file (and its old content) stays, but nobody owns the dir.
    assert (tmp_path / LOCK_FILENAME).exists()
    assert current_holder(tmp_path) is None


def test_without_a_lock_table_the_recorded_pid_decides(tmp_path: Path, clock: FakeClock) -> None:
    no_table = tmp_path / "no-such-table"
    with DataDirLock.acquire(tmp_path, "run", clock.now()):
        assert current_holder(tmp_path, no_table) is not None  # our own pid: alive
    dead = {"pid": 2**22 + 17, "command": "run", "started_at": "2026-01-01T00:00:00Z"}
    (tmp_path / LOCK_FILENAME).write_bytes(orjson.dumps(dead))
    assert current_holder(tmp_path, no_table) is None
