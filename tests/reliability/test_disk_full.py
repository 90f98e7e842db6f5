"""Disk full under a running daemon: on a small tmpfs (when this machine lets us mount one) and
with ENOSPC injected into the artifact writer's ``os.write`` (always). Episodes in the full
window end with a clear failure (failure.json naming the error, or an ``episode_lost`` log line
with a hint when not even that could be written), the daemon keeps running and healthy, the
cache stays readable, and once space returns episodes succeed again; after shutdown every run
validates and no JSON file is partial."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from clmmd.artifacts import writer
from clmmd.artifacts.layout import list_runs
from clmmd.env.mock import MockClmmEnv
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.trigger_lines import EpisodesTrigger
from clmmd.service.cli import commands
from clmmd.service.config import load_settings
from clmmd.service.host.daemon import Daemon
from clmmd.service.host.notify import SystemdNotifier
from tests.conftest import CapturedLogs
from tests.reliability._harness import json_file_problems, record_figures, run_violations

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


async def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def disk_full_scenario(
    data_dir: Path,
    logs: CapturedLogs,
    fill: Callable[[], None],
    free: Callable[[], None],
    new_handle_check: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    settings = load_settings(
        data_dir=data_dir, seed=3, durable_writes=False, http_listen="off", episode_workers=2
    )
    daemon = Daemon(
        settings, env=MockClmmEnv(), install_signals=False, notifier=SystemdNotifier(None)
    )
    task = asyncio.create_task(daemon.run())
    assert await _wait(lambda: daemon.tail is not None and daemon.layout is not None, 20)
    assert await _wait(lambda: bool(logs.events("daemon_ready")), 20)

    async def episodes(count: int) -> None:
        await daemon._on_episodes(EpisodesTrigger(id=None, count=count))

    def counts() -> dict[str, int]:
        assert daemon._summary is not None
        return dict(daemon._summary.totals.counts)

    def ended() -> int:
        return sum(counts().values()) + len(logs.events("episode_lost"))

    await episodes(3)
    assert await _wait(lambda: ended() == 3, 20)
    fill()
    try:
        await episodes(6)
        assert await _wait(lambda: ended() == 9, 30)
        # Still up, still healthy, the cache still answers (this process and another handle).
        assert not task.done()
        assert daemon.health() == []
        stack = daemon._stack
        assert stack is not None
        assert stack.cache.get_envelope("gas_regime") is not None
        assert stack.cache.get_with_quality("gas_regime", daemon.clock.now(), 3600)[0] is not None
        if new_handle_check is not None:
            new_handle_check(settings)
    finally:
        free()
    lost = logs.events("episode_lost")
    failed = logs.events("episode_failed")
    # Clear failures: every episode of the window either failed naming the error or was lost
    # with a hint; none claims success.
    assert counts() == {"success": 3, "failed": 6 - len(lost), "skipped": 0}, (counts(), lost)
    for event in failed + lost:
        assert NO_SPACE in str(event["error"]), event
    assert all("disk space" in str(e.get("hint", "")) for e in lost + failed)
    await episodes(3)
    assert await _wait(lambda: ended() == 12, 20)
    assert counts()["success"] == 6
    daemon.request_stop("test")
    assert await asyncio.wait_for(task, 30) == 0
    # Shutdown completed whatever the full disk left unfinished; every file is whole.
    assert run_violations(data_dir) == []
    assert json_file_problems(data_dir) == []
    (run,) = list_runs(data_dir)
    summary = orjson.loads(run.summary_path.read_bytes())
    return {
        "episodes_in_full_window": 6,
        "failed_with_failure_json": len(failed),
        "lost_with_hint": len(lost),
        "episodes_after_space_returned_ok": 3,
        "summary_episodes": summary["episodes"],
    }


class _NoSpaceOs(ModuleType):
    """``os`` for :mod:`artifacts.writer`, whose ``write`` fails with ENOSPC while ``full``.

    ``short`` makes the first write of a full window land half its bytes before failing, as a
    nearly full disk does."""

    def __init__(self, short: bool) -> None:
        super().__init__("os")
        self.full = False
        self.short = short
        self.shorted = False

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if self.full:
            if self.short and not self.shorted and len(data) > 1:
                self.shorted = True
                return os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, NO_SPACE)
        return os.write(fd, data)


@pytest.mark.parametrize("short", [False, True], ids=["enospc", "short-write-then-enospc"])
async def test_injected_enospc_in_artifact_writer(
    tmp_path: Path, captured_logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch, short: bool
) -> None:
    fake_os = _NoSpaceOs(short)
    monkeypatch.setattr(writer, "os", fake_os)

    def fill() -> None:
        fake_os.full = True

    def free() -> None:
        fake_os.full = False

    def status_works(settings: Any) -> None:
        # Artifact writes fail, the cache's disk does not: another process can still read it.
        cache = IntelCache(settings.data_dir / "cache")
        try:
            assert cache.get_envelope("gas_regime") is not None
        finally:
            cache.close()
        assert commands.status(settings) == 0

    figures = await disk_full_scenario(
        tmp_path / "data", captured_logs, fill, free, new_handle_check=status_works
    )
    record_figures(f"disk_full_injected_{'short' if short else 'enospc'}", **figures)


def _fill(filler: Path) -> None:
    """Write ``filler`` until not one more byte fits."""
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        while chunk:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                chunk = chunk[: len(chunk) // 2]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_real_full_tmpfs(small_tmpfs: Path, captured_logs: CapturedLogs) -> None:
    filler = small_tmpfs / "filler"

    def fill() -> None:
        _fill(filler)

    def free() -> None:
        filler.unlink()

    figures = await disk_full_scenario(small_tmpfs / "data", captured_logs, fill, free)
    record_figures("disk_full_tmpfs", **figures)


async def test_status_on_a_full_disk_says_so_in_one_line(
    small_tmpfs: Path, captured_logs: CapturedLogs, capsys: pytest.CaptureFixture[str]
) -> None:
    # Opening diskcache writes to SQLite, so `clmmd status` cannot read on a full disk; it
    # must say why in one line (the daemon's already-open handle keeps serving /status).
    filler = small_tmpfs / "filler"
    data_dir = small_tmpfs / "data"
    settings = load_settings(data_dir=data_dir, http_listen="off")
    data_dir.mkdir()
    cache = IntelCache(data_dir / "cache")
    cache.close()
    _fill(filler)
    try:
        assert commands.status(settings) == 1
    finally:
        filler.unlink()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cannot open the cache" in err and "free disk space" in err
    assert commands.status(settings) == 0  # space is back: it reads again
