"""The daemon in burst mode (in-process, deterministic) and as a real process under a fake
systemd: READY/WATCHDOG, triggers → refreshes and episodes, SIGTERM drains and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson

from clmmd.artifacts.layout import list_runs
from clmmd.artifacts.validate import validate_run
from clmmd.env.mock import MockClmmEnv
from clmmd.scheduler.triggers import trigger_episodes, trigger_refresh
from clmmd.service.config import load_settings
from clmmd.service.host.daemon import Daemon
from clmmd.service.host.notify import SystemdNotifier

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
OTHER_POOL = "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8"


def settings_for(data_dir: Path, **kw: object) -> object:
    return load_settings(data_dir=data_dir, seed=3, durable_writes=False, http_listen="off", **kw)


async def test_once_mode_processes_triggers_refreshes_and_episodes(data_dir: Path) -> None:
    trigger_refresh("out_of_range", OTHER_POOL, data_dir=data_dir)
    trigger_episodes(3, data_dir=data_dir)
    settings = settings_for(data_dir)
    daemon = Daemon(
        settings,
        env=MockClmmEnv(),
        once=True,
        install_signals=False,  # type: ignore[arg-type]
        notifier=SystemdNotifier(None),
    )
    assert await daemon.run() == 0
    (run,) = list_runs(data_dir)
    assert len(run.episode_dirs()) == 3
    assert validate_run(run) == []
    info = orjson.loads((run.run_dir / "run.json").read_bytes())
    assert info["kind"] == "daemon"
    # The triggered pool became active: its P0/P1 keys were refreshed into the cache.
    from clmmd.scheduler.cache import IntelCache

    cache = IntelCache(data_dir / "cache")
    try:
        assert cache.get_envelope(f"pool_health_score:{OTHER_POOL.lower()}:1h") is not None
        assert cache.get_envelope("gas_regime") is not None
    finally:
        cache.close()
    # A second burst does not re-run the already processed triggers, and with nothing to do
    # it leaves no empty run behind.
    daemon = Daemon(
        settings,
        env=MockClmmEnv(),
        once=True,
        install_signals=False,  # type: ignore[arg-type]
        notifier=SystemdNotifier(None),
    )
    assert await daemon.run() == 0
    assert [r.run_id for r in list_runs(data_dir)] == [run.run_id]


async def test_stop_during_episodes_drains_and_completes_folders(data_dir: Path) -> None:
    settings = settings_for(data_dir, drain_timeout_s=0.0, horizon_hours=24.0)

    class SlowEnv(MockClmmEnv):
        async def execute(self, request):  # type: ignore[no-untyped-def]
            await asyncio.sleep(30)
            return await super().execute(request)

    daemon = Daemon(
        settings,
        env=SlowEnv(),
        install_signals=False,  # type: ignore[arg-type]
        notifier=SystemdNotifier(None),
    )
    runner = asyncio.create_task(daemon.run())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if daemon.tail is not None and daemon.layout is not None:
            break
    trigger_episodes(2, data_dir=data_dir)
    for _ in range(500):
        await asyncio.sleep(0.01)
        if daemon.layout and len(daemon.layout.episode_dirs()) == 2:
            break
    daemon.request_stop("test")
    assert await asyncio.wait_for(runner, 20) == 0
    (run,) = list_runs(data_dir)
    assert validate_run(run) == []
    stages = {orjson.loads((d / "failure.json").read_bytes())["stage"] for d in run.episode_dirs()}
    assert stages == {"interrupted"}


class FakeSystemd:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET.

    A thread drains it continuously, as systemd does: an unread socket fills its small datagram
    queue (net.unix.max_dgram_qlen, often 10) and the daemon's non-blocking sends then fail.
    """

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in m for m in list(self.messages)):
                return True
            time.sleep(0.02)
        return any(needle in m for m in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._reader.join(2)
        self.sock.close()


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_real_process_ready_watchdog_triggers_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    systemd = FakeSystemd(tmp_path / "notify.sock")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CLMMD_", "HB_", "DUNE_"))},
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "400000",
        "CLMMD_DATA_DIR": str(data_dir),
        "CLMMD_HTTP_LISTEN": f"127.0.0.1:{port}",
        "CLMMD_DURABLE_WRITES": "false",
        "CLMMD_DRAIN_TIMEOUT_S": "20",
        "HB_SEED": "5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "clmmd.service.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert systemd.wait_for("READY=1", 30), systemd.messages
        assert systemd.wait_for("WATCHDOG=1", 5), systemd.messages
        trigger_refresh("out_of_range", OTHER_POOL, data_dir=data_dir)
        trigger_episodes(6, data_dir=data_dir)

        def episodes_done() -> int:
            runs = list_runs(data_dir)
            return (
                sum((d / "metadata.json").exists() for d in runs[-1].episode_dirs()) if runs else 0
            )

        assert _wait(lambda: episodes_done() >= 2, 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as resp:
            status = orjson.loads(resp.read())
        assert status["episodes"]["finished"] >= 2
        assert OTHER_POOL.lower() in [p.lower() for p in status["active_pools"]]
        assert status["cache"]["gas_regime"]["quality"] == "fresh"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'clmmd_episodes_total{status="success"}' in metrics
        assert "clmmd_refreshes_total" in metrics
        status_out = subprocess.run(
            [sys.executable, "-m", "clmmd.service.cli", "status"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert "daemon: running" in status_out
        assert "triggers: read up to line 2 " in status_out
        assert f"pool_health_score:{OTHER_POOL.lower()}:1h" in status_out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.stdout.read().decode() if proc.stdout else ""
    events = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "daemon_ready" in names and "daemon_stopped" in names
    assert any(
        e["event"] == "trigger_refresh_started" and e["pool"] == OTHER_POOL.lower() for e in events
    )
    assert systemd.wait_for("STOPPING=1", 2), systemd.messages[-5:]
    systemd.close()
    (run,) = list_runs(data_dir)
    assert validate_run(run) == []
    assert len(run.episode_dirs()) >= 2


def test_learning_or_real_mode_runs_one_episode_at_a_time(data_dir: Path) -> None:
    def workers(**kw: object) -> int:
        daemon = Daemon(
            settings_for(data_dir, episode_workers=4, **kw),  # type: ignore[arg-type]
            env=MockClmmEnv(),
            install_signals=False,
            notifier=SystemdNotifier(None),
        )
        return daemon.episode_workers

    assert workers() == 4
    assert workers(learn_from_mock=True) == 1
    assert workers(hb_env="real") == 1


async def test_daemon_run_logs_every_episode_to_its_campaign_log(data_dir: Path) -> None:
    """The daemon opens its run the way a campaign does: run_id bound to every line, the
    run's campaign.log gets the episodes' lines, and the ``.active`` marker goes at the end."""
    trigger_episodes(2, data_dir=data_dir)
    daemon = Daemon(
        settings_for(data_dir),
        env=MockClmmEnv(),
        once=True,
        install_signals=False,
        notifier=SystemdNotifier(None),
    )
    assert await daemon.run() == 0
    (run,) = list_runs(data_dir)
    lines = [orjson.loads(x) for x in run.campaign_log.read_bytes().splitlines()]
    done = [x for x in lines if x["event"] == "episode_done"]
    assert len(done) == 2
    assert {x.get("run_id") for x in lines} == {run.run_id}
    assert not run.active_marker.exists()
