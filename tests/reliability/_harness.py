"""Shared machinery of the fault-injection tests: the daemon as a real process, its JSON log,
a fake Dune server on its own thread, a stepped simulated clock, and whole-data-dir checks.

Nothing here asserts; the tests do.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.layout import list_runs
from clmmd.artifacts.validate import validate_run
from clmmd.artifacts.writer import TEMP_MARKER

REPO = Path(__file__).resolve().parents[2]
LONG = os.environ.get("CLMMD_LONG_TESTS") == "1"
_SKIP_SHORT = pytest.mark.skipif(not LONG, reason="long version: set CLMMD_LONG_TESTS=1 to run it")


def long_only(test: Callable[..., Any]) -> Callable[..., Any]:
    """The long variant of a fault test: marked ``slow``, run only with CLMMD_LONG_TESTS=1."""
    marked: Callable[..., Any] = pytest.mark.slow(_SKIP_SHORT(test))
    return marked


POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
OTHER_POOL = "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8"
#: Where the measured figures of a long run are appended (docs/reliability.md quotes them).
FIGURES_FILE = os.environ.get("CLMMD_RELIABILITY_FIGURES")


def record_figures(name: str, **figures: Any) -> None:
    """Append one JSON line of measured figures when ``CLMMD_RELIABILITY_FIGURES`` names a file."""
    if FIGURES_FILE:
        line = orjson.dumps({"test": name, "long": LONG, **figures}) + b"\n"
        with open(FIGURES_FILE, "ab") as out:
            out.write(line)


def daemon_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a daemon process: nothing inherited from the machine's clmmd config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLMMD_", "HB_", "DUNE_"))}
    env.update(
        {
            "CLMMD_DATA_DIR": str(data_dir),
            "CLMMD_HTTP_LISTEN": "off",
            "CLMMD_DURABLE_WRITES": "false",
            "CLMMD_DRAIN_TIMEOUT_S": "5",
            "HB_SEED": "11",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port nothing listens on right now (for a daemon's status endpoint)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of ``GET http://127.0.0.1:<port><path>``; (0, error) when unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def metric(body: str, name: str, labels: str = "") -> float | None:
    """The value of one sample in a Prometheus text page (``labels``: as printed)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in body.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return None


class DaemonProcess:
    """``clmmd run`` as a child process; stdout and stderr go to files beside the data dir."""

    def __init__(
        self, env: dict[str, str], out_dir: Path, name: str, *args: str, command: str = "run"
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = out_dir / f"{name}.stdout"
        self.stderr_path = out_dir / f"{name}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clmmd.service.cli", command, *args],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=err,
            )

    def events(self) -> list[dict[str, Any]]:
        return parse_json_lines(self.stdout_path.read_bytes())

    def wait_for_event(self, name: str, timeout: float) -> bool:
        return wait_until(
            lambda: any(e.get("event") == name for e in self.events()) or not self.alive(),
            timeout,
        ) and any(e.get("event") == name for e in self.events())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, signum)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return -9

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 30) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return -9


def parse_json_lines(data: bytes) -> list[dict[str, Any]]:
    """Every complete JSON object line; a torn last line (killed mid-write) is skipped."""
    out = []
    for line in data.splitlines():
        if line.startswith(b"{"):
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def daemon_log_events(data_dir: Path) -> list[dict[str, Any]]:
    """Events of ``<data_dir>/logs/clmmd.log`` and its rotated siblings, oldest first."""
    logs = data_dir / "logs"
    files = sorted(
        logs.glob("clmmd.log*"),
        key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
    )
    events: list[dict[str, Any]] = []
    for path in files:
        events += parse_json_lines(path.read_bytes())
    return events


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# -- whole data-dir checks ------------------------------------------------------------------


def _walk(root: Path, *, pruned: tuple[Path, ...]) -> list[Path]:
    """Every path under ``root``, never descending into ``pruned``: a live daemon's run folder
    is one of them, and its temporary folders vanish while a recursive glob is inside them."""
    found: list[Path] = []
    for top, dirs, files in os.walk(root):
        here = Path(top)
        dirs[:] = sorted(d for d in dirs if here / d not in pruned)
        found += [here / d for d in dirs] + [here / f for f in sorted(files)]
    return sorted(found)


def json_file_problems(data_dir: Path, *, skip: tuple[Path, ...] = ()) -> list[str]:
    """Every ``*.json`` file outside the cache that is empty or not JSON, and temp residue."""
    problems = []
    for path in _walk(data_dir, pruned=(*skip, data_dir / "cache")):
        if TEMP_MARKER in path.name:
            problems.append(f"{path}: leftover temporary file")
        elif path.is_file() and path.suffix == ".json":
            raw = path.read_bytes()
            if not raw.strip():
                problems.append(f"{path}: empty JSON file")
                continue
            try:
                orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                problems.append(f"{path}: partial or invalid JSON: {exc}")
    return problems


def run_violations(data_dir: Path, *, skip_runs: tuple[str, ...] = ()) -> list[str]:
    """Validator violations of every run (except ``skip_runs``, e.g. a live daemon's)."""
    out = []
    for layout in list_runs(data_dir):
        if layout.run_id not in skip_runs:
            out += [str(v) for v in validate_run(layout)]
    return out


# -- simulated time -------------------------------------------------------------------------


@dataclass(order=True)
class _Sleeper:
    due: float
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class SteppedClock:
    """Simulated time that moves only when the test calls :meth:`advance`.

    Unlike ``FakeClock`` (whose ``sleep`` jumps time forward), a sleeper here waits until the
    driver has moved the clock past its wake-up time, so concurrent pollers cannot race time
    ahead and every backoff, poll and rate-limit wait takes simulated time as in production.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(self._mono + seconds, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        while self._sleepers and self._sleepers[0].due <= self._mono:
            sleeper = heapq.heappop(self._sleepers)
            if not sleeper.future.done():
                sleeper.future.set_result(None)
