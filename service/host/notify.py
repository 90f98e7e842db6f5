"""The systemd notify protocol (``Type=notify``): READY, STATUS, STOPPING and WATCHDOG pings.

A message is one datagram of ``KEY=value`` lines sent to the unix socket named by
``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Without that variable
(not started by systemd, or tests) every call is a no-op. Sending never raises into the caller
and never blocks the loop: the socket is non-blocking, a failure is logged once, and READY /
STOPPING, which wait a little for room in a full notify queue, wait on the event loop
(``await``), never in ``time.sleep``.

The watchdog ping is only sent while the event loop is keeping time: :func:`watchdog_loop`
measures how late each wake-up is, and a loop that lags more than ``max_lag_s`` stops pinging,
so systemd restarts a wedged daemon (``WatchdogSec=``) instead of keeping it alive.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Mapping

import structlog

from clmmd.artifacts.base.clock import Clock, SystemClock

log = structlog.get_logger(__name__)

_FIELD_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: How long READY/STOPPING may wait for room in systemd's notify queue.
_STATE_CHANGE_PATIENCE_S = 2.0
#: How often READY/STOPPING retry while the queue is full.
_STATE_CHANGE_RETRY_S = 0.01


class SystemdNotifier:
    """Sends notify messages to ``address`` (``None``: disabled, every call a no-op)."""

    def __init__(self, address: str | None, *, clock: Clock | None = None) -> None:
        self.address = address
        self.clock = clock or SystemClock()
        self._socket: socket.socket | None = None
        self._failure_logged = False
        self._last_was_full = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, clock: Clock | None = None
    ) -> SystemdNotifier:
        """The notifier ``NOTIFY_SOCKET`` asks for; disabled when unset or unsupported."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        if not raw:
            return cls(None, clock=clock)
        if raw.startswith("/"):
            return cls(raw, clock=clock)
        if raw.startswith("@") and len(raw) > 1:
            return cls("\0" + raw[1:], clock=clock)
        log.warning("systemd_notify_unsupported_socket", notify_socket=raw)
        return cls(None, clock=clock)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    async def ready(self, status: str | None = None) -> bool:
        """Start-up finished (systemd marks the unit active)."""
        fields: dict[str, str | int] = {"READY": 1}
        if status is not None:
            fields["STATUS"] = status
        return await self._send_state_change(fields)

    async def stopping(self) -> bool:
        """Shutdown began (systemd waits for the exit instead of treating it as a crash)."""
        return await self._send_state_change({"STOPPING": 1})

    async def _send_state_change(self, fields: dict[str, str | int]) -> bool:
        # READY and STOPPING are sent once and matter (a lost READY fails the start): when
        # systemd is slow and its datagram queue is full, wait a little for room rather than
        # drop them, yielding to the loop meanwhile (episodes, HTTP and the watchdog go on).
        # Watchdog pings and status lines stay fire-and-forget.
        deadline = self.clock.monotonic() + _STATE_CHANGE_PATIENCE_S
        while True:
            if self.send(**fields):
                return True
            if (
                self.address is None
                or self.clock.monotonic() >= deadline
                or not self._last_was_full
            ):
                return False
            await self.clock.sleep(_STATE_CHANGE_RETRY_S)

    def status(self, text: str) -> bool:
        """One free-text line shown by ``systemctl status``."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        """The keep-alive ping for ``WatchdogSec=``."""
        return self.send(WATCHDOG=1)

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when sent, False when disabled or it
        failed (logged once). Newlines in values are flattened so no field can inject another."""
        if self.address is None or not fields:
            return False
        try:
            lines = []
            for key, value in fields.items():
                if not _FIELD_RE.match(key):
                    raise ValueError(f"bad notify field name {key!r}")
                text = str(value).replace("\r", " ").replace("\n", " ")
                lines.append(f"{key}={text}")
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto("\n".join(lines).encode(), self.address)
            self._last_was_full = False
        except BlockingIOError:
            self._last_was_full = True  # systemd has not read its queue yet
            return False
        except (OSError, ValueError) as exc:
            self._last_was_full = False
            if not self._failure_logged:
                self._failure_logged = True
                log.warning(
                    "systemd_notify_failed",
                    socket=self._printable_address(),
                    error=f"{type(exc).__name__}: {exc}",
                )
            return False
        return True

    def close(self) -> None:
        """Close the socket (idempotent); a later send opens a new one."""
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _printable_address(self) -> str | None:
        if self.address is not None and self.address.startswith("\0"):
            return "@" + self.address[1:]
        return self.address


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to ping: half of ``WATCHDOG_USEC``, or None when the watchdog is off.

    ``WATCHDOG_PID``, when set, names the process systemd expects pings from; any other
    process (a child that inherited the environment) must not ping.
    """
    env = os.environ if environ is None else environ
    raw_usec = env.get("WATCHDOG_USEC", "")
    if not raw_usec:
        return None
    raw_pid = env.get("WATCHDOG_PID", "")
    if raw_pid:
        try:
            pid = int(raw_pid)
        except ValueError:
            log.warning("systemd_watchdog_pid_invalid", watchdog_pid=raw_pid)
            return None
        if pid != os.getpid():
            return None
    try:
        usec = int(raw_usec)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("systemd_watchdog_usec_invalid", watchdog_usec=raw_usec)
        return None
    return usec / 1_000_000 / 2


async def watchdog_loop(
    notifier: SystemdNotifier,
    interval_s: float,
    stop: asyncio.Event,
    *,
    clock: Clock,
    max_lag_s: float | None = None,
) -> None:
    """Ping ``WATCHDOG=1`` every ``interval_s`` until ``stop`` is set, skipping any ping whose
    wake-up came more than ``max_lag_s`` late (default: ``interval_s / 2``)."""
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")
    max_lag = interval_s / 2 if max_lag_s is None else max_lag_s
    notifier.watchdog()  # healthy enough to get here: the first ping goes out at once
    while not stop.is_set():
        due = clock.monotonic() + interval_s
        sleeper = asyncio.ensure_future(clock.sleep(interval_s))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        if stop.is_set():
            break
        lag = clock.monotonic() - due
        if lag > max_lag:
            log.warning(
                "event_loop_lagging", lag_s=round(lag, 3), max_lag_s=max_lag, ping="skipped"
            )
            continue
        notifier.watchdog()


__all__ = ["SystemdNotifier", "watchdog_interval_s", "watchdog_loop"]
