"""Items 5 and 9 of issue 13: one owner per data dir, and start-up failures that say one thing.

Before: two daemons (or a daemon and a learning campaign) on one data dir shared triggers,
both ran id-less triggers, and a second learner failed silently 300 times with exit 0; a busy
status address died with a traceback after creating an empty run, and ``run --once`` with
nothing to do left an empty run too.
"""

from __future__ import annotations

import socket
from pathlib import Path

import orjson

from clmmd.artifacts.layout import list_runs
from clmmd.scheduler.triggers import trigger_episodes
from clmmd.service.datadir_lock import LOCK_FILENAME
from tests.reliability._harness import (
    DaemonProcess,
    daemon_env,
    record_figures,
)


def test_a_second_owner_is_refused_in_one_line_and_readers_are_not(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = daemon_env(data_dir)
    first = DaemonProcess(env, tmp_path / "out", "first")
    try:
        assert first.wait_for_event("daemon_ready", 60), first.stderr()
        holder = orjson.loads((data_dir / LOCK_FILENAME).read_bytes())
        assert holder["pid"] == first.proc.pid and holder["command"] == "run"

        second = DaemonProcess(env, tmp_path / "out", "second")
        learner = DaemonProcess(
            {**env, "LEARN_FROM_MOCK": "true"},
            tmp_path / "out",
            "learner",
            "--episodes",
            "5",
            command="campaign",
        )
        outcomes = {}
        for name, proc in (("second daemon", second), ("learning campaign", learner)):
            code = proc.wait(60)
            lines = proc.stderr().strip().splitlines()
            assert code == 2, (name, lines)
            assert len(lines) == 1, (name, lines)
            assert f"pid {first.proc.pid}" in lines[0] and "clmmd run" in lines[0], lines
            outcomes[name] = lines[0]
        # Only the owner's run exists: the refused processes wrote nothing.
        assert len(list_runs(data_dir)) == 1
        # Read-only commands never need the data dir.
        for command in ("status", "runs"):
            reader = DaemonProcess(env, tmp_path / "out", command, command=command)
            assert reader.wait(60) == 0, reader.stderr()
            if command == "status":
                status_out = reader.stdout_path.read_text()
        # status names the owner (the daemon's HTTP status may be off or elsewhere).
        owner = f"owned by clmmd run (pid {first.proc.pid}, started {holder['started_at']})"
        assert owner in status_out, status_out
        # A mock campaign that does not learn writes its own run beside the daemon.
        plain = DaemonProcess(env, tmp_path / "out", "plain", "--episodes", "2", command="campaign")
        assert plain.wait(60) == 0, plain.stderr()
        assert first.alive()
    finally:
        assert first.terminate() == 0
    # Released at exit: the next owner starts.
    again = DaemonProcess(env, tmp_path / "out", "again", "--once")
    assert again.wait(60) == 0, again.stderr()
    record_figures("two_owners", refused=outcomes)


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = daemon_env(data_dir)
    first = DaemonProcess(env, tmp_path / "out", "first")
    assert first.wait_for_event("daemon_ready", 60), first.stderr()
    first.kill9()  # no chance to release anything: the kernel drops the flock
    second = DaemonProcess(env, tmp_path / "out", "second", "--once")
    assert second.wait(60) == 0, second.stderr()


def test_a_busy_status_address_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        daemon = DaemonProcess(
            daemon_env(data_dir, CLMMD_HTTP_LISTEN=f"127.0.0.1:{port}"), tmp_path / "out", "busy"
        )
        code = daemon.wait(60)
    lines = daemon.stderr().strip().splitlines()
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert f"CLMMD_HTTP_LISTEN='127.0.0.1:{port}'" in lines[0] and "in use" in lines[0]
    assert list_runs(data_dir) == []


def test_an_unassignable_status_address_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = daemon_env(data_dir, CLMMD_HTTP_LISTEN="192.0.2.1:9321", CLMMD_HTTP_ALLOW_REMOTE="yes")
    daemon = DaemonProcess(env, tmp_path / "out", "unassignable")
    code = daemon.wait(60)
    lines = daemon.stderr().strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "cannot listen there" in lines[0]
    assert list_runs(data_dir) == []


def test_run_once_with_nothing_to_do_leaves_no_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = daemon_env(data_dir)
    idle = DaemonProcess(env, tmp_path / "out", "idle", "--once")
    assert idle.wait(60) == 0, idle.stderr()
    assert list_runs(data_dir) == []
    trigger_episodes(1, data_dir=data_dir)
    busy = DaemonProcess(env, tmp_path / "out", "busy", "--once")
    assert busy.wait(60) == 0, busy.stderr()
    (run,) = list_runs(data_dir)
    assert len(run.episode_dirs()) == 1
