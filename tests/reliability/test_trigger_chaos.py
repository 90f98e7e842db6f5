"""Trigger chaos: writer processes append triggers with ids while the daemon is killed (-9) and
restarted again and again; the file is truncated once and rotated once. Every id is dispatched
(``trigger_refresh_started`` / ``episodes_enqueued`` in the daemon log), none twice.

Truncation and rotation are operator actions with documented limits (``scheduler/
trigger_tail.py``): lines still unread when a file is truncated are gone by definition, and a
rotation while the daemon is stopped cannot finish the old file. So the test truncates only
after the daemon has caught up (and resumes the writers once it has noticed), and rotates with
the daemon running (it must finish the old file through the descriptor it holds)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import diskcache
import orjson

from clmmd.scheduler.cache import _DEDUP_PREFIX
from clmmd.scheduler.trigger_tail import DEDUPE_PREFIX, OFFSET_FILENAME
from clmmd.scheduler.triggers import trigger_path
from tests.reliability._harness import (
    POOL,
    REPO,
    DaemonProcess,
    daemon_env,
    daemon_log_events,
    long_only,
    record_figures,
    wait_until,
)

DISPATCH_EVENTS = ("trigger_refresh_started", "episodes_enqueued")

WRITER = """
import os, sys, time
from datetime import UTC, datetime
from clmmd.scheduler.triggers import append_trigger, trigger_path
from pathlib import Path
data_dir, control, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
count, gap, pool = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
(control / f"started-{name}").touch()
while not (control / "go").exists():
    time.sleep(0.005)
path = trigger_path(data_dir)
for i in range(count):
    while (control / "pause").exists():
        (control / f"paused-{name}").touch()
        time.sleep(0.005)
    trigger_id = f"{name}-{i:05d}"
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if i % 20 == 19:
        record = {"id": trigger_id, "ts": ts, "type": "episodes", "count": 1}
    else:
        record = {"id": trigger_id, "ts": ts, "type": "refresh", "reason": "chaos",
                  "pool_address": pool, "priorities": ["P0"]}
    append_trigger(path, record)
    time.sleep(gap)
(control / f"done-{name}").touch()
"""


def _caught_up(data_dir: Path, not_ino: int | None = None) -> bool:
    """The daemon's persisted position is the end of the current trigger file."""
    try:
        position = orjson.loads((data_dir / OFFSET_FILENAME).read_bytes())
        info = trigger_path(data_dir).stat()
    except (OSError, orjson.JSONDecodeError):
        return False
    return (
        position["ino"] == info.st_ino
        and position["offset"] == info.st_size
        and position["ino"] != not_ino
    )


def _claimed(data_dir: Path, ids: list[str]) -> list[str]:
    """The ids among ``ids`` that the tail's dedupe store marked as taken."""
    cache = diskcache.Cache(str(data_dir / "cache"))
    try:
        return [i for i in ids if f"{_DEDUP_PREFIX}{DEDUPE_PREFIX}{i}" in cache]
    finally:
        cache.close()


def _ids_in(path: Path) -> set[str]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_bytes().splitlines():
        if line.endswith(b"}"):
            out.add(orjson.loads(line)["id"])
    return out


class Writers:
    def __init__(self, data_dir: Path, control: Path, n: int, count: int, gap: float) -> None:
        control.mkdir(parents=True, exist_ok=True)
        self.control = control
        self.names = [f"w{k}" for k in range(n)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        tail = [str(count), str(gap), POOL]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(data_dir), str(control), name, *tail],
                env=env,
                cwd=REPO,
            )
            for name in self.names
        ]
        assert wait_until(lambda: all((control / f"started-{n}").exists() for n in self.names), 30)
        (control / "go").touch()

    def pause(self) -> None:
        (self.control / "pause").touch()
        assert wait_until(
            lambda: all(
                (self.control / f"paused-{n}").exists() or (self.control / f"done-{n}").exists()
                for n in self.names
            ),
            30,
        )

    def resume(self) -> None:
        (self.control / "pause").unlink()
        for name in self.names:
            (self.control / f"paused-{name}").unlink(missing_ok=True)

    def done(self) -> bool:
        return all((self.control / f"done-{n}").exists() for n in self.names)

    def join(self) -> None:
        for proc in self.procs:
            assert proc.wait(300) == 0

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def chaos(tmp_path: Path, *, writers: int, per_writer: int, kills: int, gap: float) -> dict:
    rng = random.Random(5)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = daemon_env(data_dir, CLMMD_EPISODE_WORKERS="2")
    path = trigger_path(data_dir)
    expected = {f"w{k}-{i:05d}" for k in range(writers) for i in range(per_writer)}
    truncate_at, rotate_at = kills // 3, (2 * kills) // 3
    gone: set[str] = set()  # ids of lines removed by the truncation (after being dispatched)
    started = time.monotonic()
    crew = Writers(data_dir, tmp_path / "control", writers, per_writer, gap)
    try:
        for cycle in range(kills):
            daemon = DaemonProcess(env, tmp_path / "out", f"cycle{cycle:02d}")
            try:
                assert daemon.wait_for_event("daemon_ready", 60), daemon.stderr_path.read_text()
                if cycle in (truncate_at, rotate_at):
                    crew.pause()
                    if cycle == truncate_at:
                        assert wait_until(lambda: _caught_up(data_dir), 60)
                        gone |= _ids_in(path)
                        os.truncate(path, 0)
                        assert daemon.wait_for_event("trigger_file_truncated", 30)
                    else:
                        old_ino = path.stat().st_ino
                        os.rename(path, path.with_name(path.name + ".1"))
                        # The daemon finishes the old file (through the descriptor it holds)
                        # once the new one appears, before it may be killed again.
                        path.touch()
                        assert wait_until(
                            lambda i=old_ino: _caught_up(data_dir, not_ino=i),  # type: ignore[misc]
                            60,
                        )
                    crew.resume()
                time.sleep(rng.uniform(0.2, 1.0))
            finally:
                daemon.kill9()
        crew.join()
        final = DaemonProcess(env, tmp_path / "out", "final")
        try:
            assert final.wait_for_event("daemon_ready", 60)
            assert wait_until(lambda: _caught_up(data_dir), 120, step=0.1)
        finally:
            assert final.terminate() == 0
    finally:
        crew.kill()
    written = gone | _ids_in(path) | _ids_in(path.with_name(path.name + ".1"))
    assert written == expected, f"writers wrote {len(written)} of {len(expected)} ids"
    counts: Counter[str] = Counter()
    for event in daemon_log_events(data_dir):
        if event.get("event") in DISPATCH_EVENTS and event.get("trigger_id"):
            counts[event["trigger_id"]] += 1
    lost = sorted(expected - set(counts))
    twice = sorted(i for i, n in counts.items() if n > 1)
    figures = {
        "triggers": len(expected),
        "writers": writers,
        "kills": kills,
        "truncations": 1,
        "rotations": 1,
        "dispatched": len(set(counts) & expected),
        "lost": len(lost),
        "dispatched_twice": len(twice),
        "duration_s": round(time.monotonic() - started, 1),
    }
    assert twice == [], f"{len(twice)} triggers dispatched twice, e.g. {twice[:5]}"
    # At most once by design (SPEC): the tail claims an id before dispatching it, so a kill
    # between the claim and the dispatch loses that one trigger. Anything else lost is a bug:
    # every lost id must be claimed, and a kill loses at most the one line in that window.
    assert _claimed(data_dir, lost) == lost, f"lost without a claim: {lost[:5]}"
    assert len(lost) <= kills, f"{len(lost)} lost in {kills} kills: more than one per kill"
    return figures


def test_trigger_chaos_short(tmp_path: Path) -> None:
    figures = chaos(tmp_path, writers=4, per_writer=150, kills=4, gap=0.008)
    record_figures("trigger_chaos_short", **figures)


@long_only
def test_trigger_chaos_long(tmp_path: Path) -> None:
    figures = chaos(tmp_path, writers=4, per_writer=2500, kills=20, gap=0.008)
    record_figures("trigger_chaos_long", **figures)
