from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clmmd.artifacts.base.clock import FakeClock, SystemClock
from clmmd.service.host.notify import SystemdNotifier, watchdog_interval_s, watchdog_loop
from tests.conftest import CapturedLogs


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket at a short path (sun_path is limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sdn") as directory:
        path = str(Path(directory) / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2)
        yield sock, path
        sock.close()


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


async def test_messages_reach_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert await notifier.ready(status="serving 3 pools")
    assert received(sock) == "READY=1\nSTATUS=serving 3 pools"
    assert notifier.status("tick 4\nINJECTED=1")
    assert received(sock) == "STATUS=tick 4 INJECTED=1"
    assert notifier.watchdog()
    assert received(sock) == "WATCHDOG=1"
    assert await notifier.stopping()
    assert received(sock) == "STOPPING=1"
    assert notifier.send(RELOADING=1, MONOTONIC_USEC=42)
    assert received(sock) == "RELOADING=1\nMONOTONIC_USEC=42"
    notifier.close()
    notifier.close()
    assert await notifier.ready()  # a send after close opens a new socket
    assert received(sock) == "READY=1"
    notifier.close()


@pytest.mark.skipif(sys.platform != "linux", reason="abstract unix sockets are Linux-only")
async def test_messages_reach_an_abstract_socket() -> None:
    name = f"clmmd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert await notifier.ready()
        assert received(sock) == "READY=1"
        notifier.close()


async def test_without_notify_socket_everything_is_a_no_op(captured_logs: CapturedLogs) -> None:
    for env in ({}, {"NOTIFY_SOCKET": ""}):
        notifier = SystemdNotifier.from_env(env)
        assert not notifier.enabled
        assert not await notifier.ready()
        assert not notifier.watchdog()
        assert not await notifier.stopping()
        assert not notifier.status("x")
    assert captured_logs.lines() == []


async def test_an_unsupported_socket_address_disables_with_a_warning(
    captured_logs: CapturedLogs,
) -> None:
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled and not await notifier.ready()
    assert len(captured_logs.events("systemd_notify_unsupported_socket")) == 1


async def test_send_failures_never_raise_and_are_logged_once(
    tmp_path: Path, captured_logs: CapturedLogs
) -> None:
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    assert notifier.enabled
    assert [await notifier.ready(), notifier.watchdog(), await notifier.stopping()] == [False] * 3
    (event,) = captured_logs.events("systemd_notify_failed")
    assert "absent.sock" in str(event["socket"])
    notifier.close()


def test_bad_field_names_are_refused_without_raising(
    listener: tuple[socket.socket, str], captured_logs: CapturedLogs
) -> None:
    sock, path = listener
    notifier = SystemdNotifier(path)
    assert not notifier.send(**{"READY=1\nWATCHDOG": 1})
    assert not notifier.send(ready=1)
    assert len(captured_logs.events("systemd_notify_failed")) == 1
    assert notifier.send(READY=1)  # nothing half-sent before: the first datagram is this one
    assert received(sock) == "READY=1"
    notifier.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "init"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": str(os.getpid())}, None),
    ],
)
def test_watchdog_interval_from_environment(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected


class RecordingNotifier(SystemdNotifier):
    """Counts watchdog pings (with the clock time) and sets ``stop`` after ``limit`` of them."""

    def __init__(self, clock: FakeClock, stop: asyncio.Event, limit: int) -> None:
        super().__init__(None)
        self.clock, self.stop, self.limit = clock, stop, limit
        self.pings: list[float] = []

    def watchdog(self) -> bool:
        self.pings.append(self.clock.monotonic())
        if len(self.pings) >= self.limit:
            self.stop.set()
        return True


class LaggyClock(FakeClock):
    """Oversleeps by ``lags[i]`` seconds on the i-th sleep (a loop busy elsewhere)."""

    def __init__(self, lags: dict[int, float]) -> None:
        super().__init__()
        self.lags = lags

    async def sleep(self, seconds: float) -> None:
        extra = self.lags.get(len(self.slept), 0.0)
        await super().sleep(seconds)
        self.advance(extra)


async def test_watchdog_pings_every_interval_until_stopped() -> None:
    clock, stop = FakeClock(), asyncio.Event()
    notifier = RecordingNotifier(clock, stop, limit=4)
    start = clock.monotonic()
    await asyncio.wait_for(watchdog_loop(notifier, 5.0, stop, clock=clock, max_lag_s=1), 5)
    assert notifier.pings == [start, start + 5, start + 10, start + 15]
    assert clock.slept == [5.0, 5.0, 5.0]


async def test_a_lagging_loop_skips_the_ping_and_says_so(captured_logs: CapturedLogs) -> None:
    clock, stop = LaggyClock({1: 3.0, 2: 0.5}), asyncio.Event()
    notifier = RecordingNotifier(clock, stop, limit=4)
    start = clock.monotonic()
    await asyncio.wait_for(watchdog_loop(notifier, 5.0, stop, clock=clock, max_lag_s=1), 5)
    # Sleep 1 woke 3 s late: no ping. Sleep 2 was 0.5 s late: within the bound, ping.
    assert notifier.pings == [start, start + 5, start + 18.5, start + 23.5]
    (event,) = captured_logs.events("event_loop_lagging")
    assert event["lag_s"] == 3.0 and event["ping"] == "skipped"


async def test_stop_interrupts_a_long_wait() -> None:
    stop = asyncio.Event()
    notifier = SystemdNotifier(None)
    task = asyncio.create_task(watchdog_loop(notifier, 3600, stop, clock=SystemClock()))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_watchdog_loop_sends_real_datagrams(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    clock, stop = FakeClock(), asyncio.Event()

    class StopAfterThree(SystemdNotifier):
        sent = 0

        def watchdog(self) -> bool:
            ok = super().watchdog()
            self.sent += 1
            if self.sent == 3:
                stop.set()
            return ok

    notifier = StopAfterThree.from_env({"NOTIFY_SOCKET": path})
    await asyncio.wait_for(watchdog_loop(notifier, 1.0, stop, clock=clock), 5)
    notifier.close()
    assert [received(sock) for _ in range(3)] == ["WATCHDOG=1"] * 3
    sock.settimeout(0.01)
    with pytest.raises(TimeoutError):
        received(sock)


async def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        await watchdog_loop(SystemdNotifier(None), 0, asyncio.Event(), clock=FakeClock())


def _fill_queue(notifier: SystemdNotifier) -> int:
    """Send watchdog pings nobody reads until the kernel refuses more; how many went."""
    sent = 0
    while notifier.watchdog():
        sent += 1
        assert sent < 100_000
    return sent


async def test_stopping_waits_for_room_without_blocking_the_loop(tmp_path: Path) -> None:
    """Regression (issue 13, item 12): STOPPING waited for room with time.sleep on the event
    loop, freezing episodes, HTTP and the watchdog for up to 2 s."""
    import threading
    import time

    path = str(tmp_path / "full.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": path})
    try:
        sent = _fill_queue(notifier)
        received: list[str] = []

        def systemd_catches_up() -> None:
            time.sleep(0.2)
            receiver.settimeout(1.0)
            for _ in range(sent + 1):
                received.append(receiver.recv(4096).decode())

        ticks = 0

        async def other_work() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        reader = threading.Thread(target=systemd_catches_up)
        reader.start()
        worker = asyncio.create_task(other_work())
        assert await notifier.stopping() is True
        worker.cancel()
        reader.join(5)
        assert received[-1] == "STOPPING=1"
        assert ticks > 10, "the loop did nothing else while STOPPING waited"
    finally:
        notifier.close()
        receiver.close()


async def test_ready_gives_up_after_its_patience_on_the_clock(tmp_path: Path) -> None:
    path = str(tmp_path / "full.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    clock = FakeClock()
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": path}, clock=clock)
    try:
        _fill_queue(notifier)
        started = clock.monotonic()
        assert await notifier.ready() is False
        assert 2.0 <= clock.monotonic() - started < 2.1
    finally:
        notifier.close()
        receiver.close()
