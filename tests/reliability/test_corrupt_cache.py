"""Item 3 of issue 13: a corrupt ``cache/cache.db``.

Before: the daemon (and every command) died at start with a 41-line ``sqlite3.DatabaseError``
traceback; under systemd, a crash loop. Now the cache folder is moved aside to
``cache.corrupt-<UTC time>`` with a warning naming where, an empty cache takes its place (intel
is refetched), and the daemon runs; the same when SQLite reports corruption while running.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from clmmd.artifacts.layout import list_runs
from clmmd.artifacts.validate import validate_run
from clmmd.env.mock import MockClmmEnv
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.trigger_lines import RefreshTrigger
from clmmd.scheduler.triggers import trigger_episodes
from clmmd.service.config import load_settings
from clmmd.service.host.daemon import Daemon
from clmmd.service.host.notify import SystemdNotifier
from tests.conftest import CapturedLogs
from tests.reliability._harness import POOL, DaemonProcess, daemon_env, record_figures

GARBAGE = b"this was a cache before the disk went bad " * 200


def _corrupt_pages(db: Path) -> None:
    """Flush the WAL into the database file, then overwrite everything after the header page."""
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with db.open("r+b") as out:
        out.seek(4096)
        out.write(os.urandom(max(size - 4096, 8192)))


def test_the_daemon_starts_on_a_corrupt_cache_db(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "cache").mkdir(parents=True)
    (data_dir / "cache" / "cache.db").write_bytes(GARBAGE)
    trigger_episodes(2, data_dir=data_dir)
    daemon = DaemonProcess(daemon_env(data_dir), tmp_path / "out", "corrupt", "--once")
    code = daemon.wait(120)
    assert code == 0, daemon.stderr()
    assert "Traceback" not in daemon.stderr()
    (warning,) = [e for e in daemon.events() if e.get("event") == "cache_corrupt"]
    moved = Path(str(warning["moved_to"]))
    assert moved.parent == data_dir and moved.name.startswith("cache.corrupt-")
    assert (moved / "cache.db").read_bytes() == GARBAGE  # kept for inspection, not deleted
    (run,) = list_runs(data_dir)
    assert len(run.episode_dirs()) == 2 and validate_run(run) == []
    cache = IntelCache(data_dir / "cache")  # the new cache holds what the burst refreshed
    try:
        assert cache.get_envelope("gas_regime") is not None
    finally:
        cache.close()
    record_figures("corrupt_cache_at_start", exit_status=code, moved_to=moved.name)


async def test_corruption_found_while_running_replaces_the_cache(
    tmp_path: Path, captured_logs: CapturedLogs
) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, seed=3, durable_writes=False, http_listen="off")
    daemon = Daemon(
        settings, env=MockClmmEnv(), install_signals=False, notifier=SystemdNotifier(None)
    )
    task = asyncio.create_task(daemon.run())
    for _ in range(1000):
        if captured_logs.events("refresh_tick_done"):
            break
        await asyncio.sleep(0.02)
    assert daemon.stack is not None
    cache = daemon.stack.cache
    assert cache.get_envelope("gas_regime") is not None
    _corrupt_pages(data_dir / "cache" / "cache.db")
    await daemon._on_refresh(RefreshTrigger("after-corruption", None, "test", POOL.lower()))
    for _ in range(1000):
        if captured_logs.events("cache_corrupt") and not daemon._refresh_tasks:
            break
        await asyncio.sleep(0.02)
    (warning,) = captured_logs.events("cache_corrupt")
    assert "malformed" in str(warning["error"]) or "not a database" in str(warning["error"])
    assert Path(str(warning["moved_to"])).is_dir()
    # Still serving, healthy, and the new cache takes writes and reads.
    await asyncio.to_thread(cache.probe)
    assert not task.done()
    assert cache.get_envelope("gas_regime") is not None  # the mirror kept serving
    daemon.request_stop("test")
    assert await asyncio.wait_for(task, 30) == 0
    fresh = IntelCache(data_dir / "cache")
    try:
        assert fresh.keys(), "the refresh after the corruption landed in the new cache"
    finally:
        fresh.close()
