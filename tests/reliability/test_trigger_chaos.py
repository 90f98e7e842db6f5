"""Trigger chaos: writer processes append triggers with ids while the daemon is killed (-9) and
restarted again and again; the file is truncated once and rotated once. Nothing is lost and no
episode runs twice: every ``episodes`` trigger ends with exactly its one episode folder (each
folder's proposal.json names its trigger), every refresh trigger was started
(``trigger_refresh_started``, or ``trigger_refreshes_resumed`` for the owed ones a start runs
once per pool; a refresh may run again after a kill, it is idempotent).

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

import orjson
import pytest

from clmmd.scheduler.trigger_ledger import read_position
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
from tests.reliability.test_sigterm_queue import episodes_by_trigger

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
    """The daemon's saved position (in the ledger) is the end of the current trigger file."""
    position = read_position(data_dir)
    try:
        info = trigger_path(data_dir).stat()
    except OSError:
        return False
    return (
        position is not None
        and position.file.ino == info.st_ino
        and position.offset == info.st_size
        and position.file.ino != not_ino
    )


def _is_episodes(trigger_id: str) -> bool:
    return int(trigger_id.rsplit("-", 1)[1]) % 20 == 19


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


def chaos(
    tmp_path: Path,
    *,
    writers: int,
    per_writer: int,
    kills: int,
    gap: float,
    durable: bool = False,
) -> dict:
    rng = random.Random(5)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = daemon_env(
        data_dir,
        CLMMD_EPISODE_WORKERS="2",
        CLMMD_DURABLE_WRITES="true" if durable else "false",
    )
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
        owed = {i for i in expected if _is_episodes(i)}
        try:
            assert final.wait_for_event("daemon_ready", 60)
            assert wait_until(lambda: _caught_up(data_dir), 120, step=0.1)
            assert wait_until(lambda: owed <= set(episodes_by_trigger(data_dir)), 120, step=0.2)
        finally:
            assert final.terminate() == 0
    finally:
        crew.kill()
    written = gone | _ids_in(path) | _ids_in(path.with_name(path.name + ".1"))
    assert written == expected, f"writers wrote {len(written)} of {len(expected)} ids"
    refreshes: Counter[str] = Counter()
    for event in daemon_log_events(data_dir):
        if event.get("event") == "trigger_refresh_started" and event.get("trigger_id"):
            refreshes[str(event["trigger_id"])] += 1
        elif event.get("event") == "trigger_refreshes_resumed":  # owed ones, run once per pool
            refreshes.update(str(i) for i in event.get("trigger_ids") or [])
    folders = episodes_by_trigger(data_dir)
    lost = sorted(i for i in expected if (folders[i] if i in owed else refreshes[i]) == 0)
    twice = sorted(i for i in owed if folders[i] > 1)
    figures = {
        "triggers": len(expected),
        "episodes_triggers": len(owed),
        "writers": writers,
        "kills": kills,
        "truncations": 1,
        "rotations": 1,
        "lost": len(lost),
        "episodes_run_twice": len(twice),
        "episode_folders": sum(folders.values()),
        "refreshes_started_again_after_a_kill": sum(n - 1 for n in refreshes.values() if n > 1),
        "durable_writes": durable,
        "duration_s": round(time.monotonic() - started, 1),
    }
    assert lost == [], f"{len(lost)} triggers lost, e.g. {lost[:5]}"
    assert twice == [], f"{len(twice)} episodes triggers ran twice, e.g. {twice[:5]}"
    # Nothing but the writers' triggers made episodes.
    assert set(folders) == owed
    return figures


def test_trigger_chaos_short(tmp_path: Path) -> None:
    figures = chaos(tmp_path, writers=4, per_writer=150, kills=4, gap=0.008)
    record_figures("trigger_chaos_short", **figures)


@long_only
@pytest.mark.parametrize("durable", [False, True], ids=["fast-writes", "durable-writes"])
def test_trigger_chaos_long(tmp_path: Path, durable: bool) -> None:
    figures = chaos(tmp_path, writers=4, per_writer=2500, kills=20, gap=0.008, durable=durable)
    record_figures("trigger_chaos_long", **figures)
