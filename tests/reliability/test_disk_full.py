"""Disk full under a running daemon: on a small tmpfs (when this machine lets us mount one) and
with ENOSPC injected into the artifact writer's ``os.write`` (always). The daemon logs to files
on the same disk (clmmd.log and the run's campaign.log), as ``clmmd run`` does. Episodes in the
full window end with a clear failure (failure.json naming the error, or an ``episode_lost`` log
line with a hint when not even that could be written, counted in
``clmmd_episodes_lost_total{reason}``), the daemon keeps running with every episode worker
alive, ``/healthz`` says ``degraded`` with the reasons while the disk is full, the cache stays
readable, and once space returns episodes succeed again and health clears; after shutdown every
run validates and no JSON file is partial.

Before issue 13 a log-file write error escaped from ``log.error`` and killed the workers (the
queue grew, ``running: 0``, ``/healthz`` still ``ok``), and ``clmmd campaign`` died with a
traceback through the log flush: the real-process tests at the end cover both."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import time
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
from clmmd.service.logging import SINKS
from tests.conftest import CapturedLogs
from tests.reliability._harness import (
    DaemonProcess,
    daemon_env,
    free_port,
    http_get,
    json_file_problems,
    metric,
    record_figures,
    run_violations,
    wait_until,
)

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
    SINKS.add_file(data_dir / "logs" / "clmmd.log")  # as `clmmd run` does, on the same disk
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

    def lost_metric() -> float:
        value = daemon.metrics.registry.get_sample_value(
            "clmmd_episodes_lost_total", {"reason": "disk_full"}
        )
        return value or 0.0

    degraded: list[str] = []

    await episodes(3)
    assert await _wait(lambda: ended() == 3, 20)
    assert daemon._stack is not None
    cache = daemon._stack.cache
    # The cache must still answer what it held before the disk filled: the first refresh's
    # data, which on a busy machine can land after the first episodes have ended.
    assert await _wait(lambda: cache.get_envelope("gas_regime") is not None, 20)
    fill()
    try:
        await episodes(6)
        assert await _wait(lambda: ended() == 9, 30)
        # Still up, every worker alive, the cache still answers (this process and another
        # handle), and health tells the truth about what is wrong.
        assert not task.done()
        assert daemon.workers_alive() == daemon.episode_workers == 2
        lost_so_far = len(logs.events("episode_lost"))
        assert lost_metric() == lost_so_far
        if lost_so_far:
            assert await _wait(lambda: any("being lost" in r for r in daemon.health()), 10)
        degraded = daemon.health()
        assert daemon._stack is not None and daemon._stack.cache is cache
        assert cache.get_envelope("gas_regime") is not None
        assert cache.get_with_quality("gas_regime", daemon.clock.now(), 3600)[0] is not None
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
    # Space is back: the next probe (an episode succeeding asks for one) clears the health.
    assert await _wait(lambda: daemon.health() == [], 10), daemon.health()
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
        "lost_metric": lost_metric(),
        "workers_alive_while_full": 2,
        "health_while_full": degraded,
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
    # A real full disk: not even the folder fits, and the probe sees runs/ refusing writes.
    assert figures["lost_with_hint"] > 0
    assert any("runs/ not writable" in r for r in figures["health_while_full"])
    assert any("being lost" in r for r in figures["health_while_full"])
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


# -- real processes on a full disk --------------------------------------------------------


def _episode_folders(data_dir: Path) -> list[Path]:
    return [episode for layout in list_runs(data_dir) for episode in layout.episode_dirs()]


def test_daemon_process_on_a_full_disk(small_tmpfs: Path) -> None:
    """``clmmd run`` with its data dir (and logs) on a disk that fills up mid-backlog: workers
    stay alive, /healthz and /metrics say what is wrong, the owed episodes wait for space
    instead of being burnt, and once space returns the workers go on; nothing accepted is
    lost and nothing runs twice."""
    from clmmd.scheduler.trigger_ledger import TriggerLedger
    from clmmd.scheduler.triggers import trigger_episodes
    from clmmd.service.datadir_lock import LOCK_FILENAME

    data_dir = small_tmpfs / "data"
    port = free_port()
    env = daemon_env(data_dir, CLMMD_HTTP_LISTEN=f"127.0.0.1:{port}", CLMMD_EPISODE_WORKERS="2")
    daemon = DaemonProcess(env, small_tmpfs.parent / "out", "full-disk")
    filler = small_tmpfs / "filler"
    try:
        assert daemon.wait_for_event("daemon_ready", 60), daemon.stderr()
        trigger_id = trigger_episodes(10_000, data_dir=data_dir)
        assert wait_until(lambda: len(_episode_folders(data_dir)) >= 20, 60)
        _fill(filler)
        before = len(_episode_folders(data_dir))

        def degraded() -> bool:
            status, body = http_get(port, "/healthz")
            return status == 503 and "runs/ not writable" in body

        assert wait_until(degraded, 30), http_get(port, "/healthz")
        _, health = http_get(port, "/healthz")
        _, page = http_get(port, "/metrics")
        assert metric(page, "clmmd_episode_workers_alive") == 2.0
        assert metric(page, "clmmd_healthy") == 0.0
        # Waiting, not burning through the backlog: a handful of attempts, not thousands.
        assert daemon.alive()
        time.sleep(2)
        _, page = http_get(port, "/metrics")
        attempts = metric(page, "clmmd_episodes_lost_total", 'reason="disk_full"') or 0.0
        assert attempts < 50, attempts
        filler.unlink()
        assert wait_until(lambda: len(_episode_folders(data_dir)) >= before + 20, 60)
        assert wait_until(lambda: http_get(port, "/healthz")[0] == 200, 30)
    finally:
        filler.unlink(missing_ok=True)
        code = daemon.terminate()
    assert code == 0, daemon.stderr()
    assert "Traceback" not in daemon.stderr()
    # Every episode folder belongs to the trigger; folders + what is still owed = 10,000.
    folders = _episode_folders(data_dir)
    owners = {orjson.loads((f / "proposal.json").read_bytes())["trigger_id"] for f in folders}
    assert owners == {trigger_id}
    ledger = TriggerLedger.open(data_dir, daemon_clock_now(), durable=False)
    try:
        # What the next start does first: a claim whose folder never appeared (its release
        # could not be written on the full disk) is owed again.
        ledger.reconcile(lambda run, ep: (data_dir / "runs" / run / "episodes" / ep).is_dir())
        (pending,) = ledger.pending_episodes()
        claimed = ledger.episodes_of(trigger_id)
    finally:
        ledger.close()
    assert pending.remaining + len(folders) == 10_000
    assert len(claimed) == len(folders)
    assert (data_dir / LOCK_FILENAME).exists()
    assert run_violations(data_dir) == []
    record_figures(
        "disk_full_daemon_process",
        owed=10_000,
        folders=len(folders),
        still_owed_at_stop=pending.remaining,
        lost_attempts_while_full=attempts,
        health_while_full=orjson.loads(health)["reasons"],
        durable_writes=False,
    )


def daemon_clock_now() -> Any:
    from clmmd.artifacts.base.clock import SystemClock

    return SystemClock().now()


def test_campaign_on_a_disk_that_fills_ends_with_one_clear_line(small_tmpfs: Path) -> None:
    """Before: a 116-line traceback through the log flush. Now: three episodes lost to the
    full disk stop the campaign, which says so plainly (exit 1)."""
    data_dir = small_tmpfs / "data"
    env = daemon_env(data_dir)
    campaign = DaemonProcess(
        env, small_tmpfs.parent / "out", "campaign", "--episodes", "100000", command="campaign"
    )
    filler = small_tmpfs / "filler"
    try:
        assert wait_until(lambda: len(_episode_folders(data_dir)) >= 20, 60), campaign.stderr()
        _fill(filler)
        code = campaign.wait(60)
    finally:
        filler.unlink(missing_ok=True)
        campaign.kill9()
    err = campaign.stderr()
    assert code == 1, err
    assert "Traceback" not in err
    # Piped, the campaign speaks JSON: its last line is the summary, saying what stopped it.
    (summary,) = [e for e in campaign.events() if e.get("event") == "campaign_summary"]
    assert "full disk" in summary["interrupted_by"] and "in a row" in summary["interrupted_by"]
    assert "No space left on device" in summary["last_loss"]
    record_figures("disk_full_campaign", exit_status=code, interrupted_by=summary["interrupted_by"])


def test_campaign_on_a_full_disk_says_so_in_one_line(small_tmpfs: Path) -> None:
    data_dir = small_tmpfs / "data"
    filler = small_tmpfs / "filler"
    _fill(filler)
    try:
        campaign = DaemonProcess(
            daemon_env(data_dir),
            small_tmpfs.parent / "out",
            "campaign-full",
            "--episodes",
            "3",
            command="campaign",
        )
        code = campaign.wait(60)
    finally:
        filler.unlink()
    lines = campaign.stderr().strip().splitlines()
    assert code == 1
    assert len(lines) == 1, lines
    assert "could not start" in lines[0] and "free disk space" in lines[0]
