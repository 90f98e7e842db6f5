"""Item 2 of issue 13: something other than a regular file at the trigger path.

Before: a FIFO there stalled the tail's reader thread in ``open()`` for good (no writer ever
came), and SIGTERM no longer ended the daemon (asyncio waits for its worker threads at exit);
a symbolic link to any readable file made the tail copy that file's lines, secrets included,
into the rejects file. Now both are refused with one warning, the daemon keeps running and
says so in /healthz, and it reads triggers again as soon as the path is a regular file.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import orjson

from clmmd.artifacts.base.clock import FakeClock
from clmmd.scheduler.trigger_ledger import TriggerLedger
from clmmd.scheduler.trigger_lines import EpisodesTrigger, RefreshTrigger
from clmmd.scheduler.trigger_tail import REJECTS_FILENAME, TriggerTail
from clmmd.scheduler.triggers import append_trigger, trigger_path
from tests.conftest import CapturedLogs
from tests.reliability._harness import (
    DaemonProcess,
    daemon_env,
    free_port,
    http_get,
    record_figures,
    wait_until,
)


def test_a_fifo_at_the_trigger_path_is_refused_and_the_daemon_stays_stoppable(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = trigger_path(data_dir)
    os.mkfifo(path)
    port = free_port()
    daemon = DaemonProcess(
        daemon_env(data_dir, CLMMD_HTTP_LISTEN=f"127.0.0.1:{port}"), tmp_path / "out", "fifo"
    )
    started = time.monotonic()
    try:
        assert daemon.wait_for_event("daemon_ready", 60), daemon.stderr()
        assert daemon.wait_for_event("trigger_file_refused", 30)
        (refused,) = [e for e in daemon.events() if e["event"] == "trigger_file_refused"]
        assert "FIFO" in str(refused["reason"])
        status, body = http_get(port, "/healthz")
        assert status == 503 and "trigger file refused" in body
        # The operator replaces it with a regular file: triggers flow again.
        path.unlink()
        append_trigger(path, {"id": "after-fifo", "type": "episodes", "count": 2})
        assert daemon.wait_for_event("episodes_enqueued", 30)
        assert daemon.wait_for_event("trigger_file_accepted", 5)
        assert wait_until(lambda: http_get(port, "/healthz")[0] == 200, 30)
        # A FIFO again, while running: refused again, and SIGTERM still ends the process.
        path.unlink()
        os.mkfifo(path)
        assert wait_until(
            lambda: sum(e.get("event") == "trigger_file_refused" for e in daemon.events()) == 2,
            30,
        )
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(30)
    finally:
        daemon.kill9()
    assert code == 0, daemon.stderr()
    record_figures("trigger_fifo", stopped_by_sigterm=code == 0, seconds=time.monotonic() - started)


async def test_a_symlink_at_the_trigger_path_is_never_followed(
    tmp_path: Path, captured_logs: CapturedLogs
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    secret = tmp_path / "credentials"
    secret.write_text("DUNE_API_KEY=dune-SYMLINK-CANARY-0123456789\nnot a trigger either\n")
    trigger_path(data_dir).symlink_to(secret)
    seen: list[str | None] = []

    async def on_episodes(trigger: EpisodesTrigger) -> None:
        seen.append(trigger.id)

    async def on_refresh(trigger: RefreshTrigger) -> None:
        seen.append(trigger.id)

    ledger = TriggerLedger.open(data_dir, FakeClock().now(), durable=False)
    tail = TriggerTail(
        data_dir, ledger, FakeClock(), on_refresh=on_refresh, on_episodes=on_episodes
    )
    try:
        report = await tail.drain_once()
        assert (report.lines, report.rejected) == (0, 0)
        assert tail.stats.refused == "a symbolic link"
        (warning,) = captured_logs.events("trigger_file_refused")
        assert warning["reason"] == "a symbolic link"
        await tail.drain_once()  # refused again, not logged again
        assert len(captured_logs.events("trigger_file_refused")) == 1
        # Nothing of the linked file went anywhere.
        assert not (data_dir / REJECTS_FILENAME).exists()
        files = [p for p in data_dir.rglob("*") if p.is_file() and not p.is_symlink()]
        everything = b"".join(p.read_bytes() for p in files)
        assert b"SYMLINK-CANARY" not in everything
        assert b"SYMLINK-CANARY" not in captured_logs.buffer.getvalue()
        # Replaced by a regular file: read from its start.
        trigger_path(data_dir).unlink()
        append_trigger(trigger_path(data_dir), {"id": "real", "type": "episodes", "count": 1})
        report = await tail.drain_once()
        assert seen == ["real"] and report.dispatched == 1
        assert tail.stats.refused is None
        assert captured_logs.events("trigger_file_accepted")
    finally:
        tail.close()
        ledger.close()


async def test_a_symlink_swapped_in_while_running_is_refused(
    tmp_path: Path, captured_logs: CapturedLogs
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = trigger_path(data_dir)
    append_trigger(path, {"id": "one", "type": "episodes", "count": 1})
    seen: list[str | None] = []

    async def on_episodes(trigger: EpisodesTrigger) -> None:
        seen.append(trigger.id)

    async def on_refresh(trigger: RefreshTrigger) -> None:
        raise AssertionError("no refresh expected")

    ledger = TriggerLedger.open(data_dir, FakeClock().now(), durable=False)
    tail = TriggerTail(
        data_dir, ledger, FakeClock(), on_refresh=on_refresh, on_episodes=on_episodes
    )
    other = tmp_path / "elsewhere.jsonl"
    other.write_bytes(orjson.dumps({"id": "smuggled", "type": "episodes", "count": 9}) + b"\n")
    try:
        await tail.drain_once()
        os.rename(path, data_dir / "old.jsonl")
        path.symlink_to(other)  # "rotation" to a link
        await tail.drain_once()
        assert seen == ["one"]
        assert tail.stats.refused == "a symbolic link"
    finally:
        tail.close()
        ledger.close()
