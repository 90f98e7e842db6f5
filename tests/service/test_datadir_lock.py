from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.service.datadir_lock import (
    LOCK_FILENAME,
    DataDirBusy,
    DataDirLock,
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
