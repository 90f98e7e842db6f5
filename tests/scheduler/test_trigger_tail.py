from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.base.clock import Clock, FakeClock, SystemClock, utc_iso
from clmmd.scheduler import trigger_watch
from clmmd.scheduler.trigger_ledger import LEDGER_FILENAME, TriggerLedger, read_position
from clmmd.scheduler.trigger_lines import EpisodesTrigger, RefreshTrigger
from clmmd.scheduler.trigger_position import LEGACY_OFFSET_FILENAME
from clmmd.scheduler.trigger_tail import REJECTS_FILENAME, TriggerTail
from clmmd.scheduler.triggers import trigger_episodes, trigger_path, trigger_refresh
from tests.conftest import CapturedLogs

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
Trigger = RefreshTrigger | EpisodesTrigger


class Recorder:
    """Handlers that record what they receive; ``fail_on`` counts raise instead."""

    def __init__(self, fail_on: frozenset[int] = frozenset()) -> None:
        self.seen: list[Trigger] = []
        self.fail_on = fail_on
        self.arrived = asyncio.Event()

    async def on_refresh(self, trigger: RefreshTrigger) -> None:
        self._record(trigger)

    async def on_episodes(self, trigger: EpisodesTrigger) -> None:
        self._record(trigger)

    def _record(self, trigger: Trigger) -> None:
        self.arrived.set()
        if isinstance(trigger, EpisodesTrigger) and trigger.count in self.fail_on:
            raise RuntimeError(f"handler broke on {trigger.count}")
        self.seen.append(trigger)

    @property
    def counts(self) -> list[int]:
        return [t.count for t in self.seen if isinstance(t, EpisodesTrigger)]


@pytest.fixture
def ledgers(data_dir: Path, clock: FakeClock) -> Iterator[list[TriggerLedger]]:
    made: list[TriggerLedger] = []
    yield made
    for ledger in made:
        ledger.close()


def open_ledger(data_dir: Path, clock: FakeClock, made: list[TriggerLedger]) -> TriggerLedger:
    ledger = TriggerLedger.open(data_dir, clock.now(), durable=False)
    made.append(ledger)
    return ledger


@pytest.fixture
def tails() -> Iterator[list[TriggerTail]]:
    made: list[TriggerTail] = []
    yield made
    for tail in made:
        tail.close()


@pytest.fixture
def make_tail(
    data_dir: Path, clock: FakeClock, tails: list[TriggerTail], ledgers: list[TriggerLedger]
) -> Any:
    """A tail on its own ledger connection (as after a restart of the process)."""
    data_dir.mkdir(parents=True, exist_ok=True)

    def make(recorder: Recorder, **options: Any) -> TriggerTail:
        the_clock: Clock = options.pop("clock", clock)
        tail = TriggerTail(
            data_dir,
            open_ledger(data_dir, clock, ledgers),
            the_clock,
            on_refresh=recorder.on_refresh,
            on_episodes=recorder.on_episodes,
            **options,
        )
        tails.append(tail)
        return tail

    return make


def append(data_dir: Path, *lines: bytes | dict[str, Any]) -> None:
    with trigger_path(data_dir).open("ab") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else orjson.dumps(line) + b"\n")


def episodes(count: object, **fields: Any) -> dict[str, Any]:
    return {"type": "episodes", "count": count, **fields}


def saved_position(data_dir: Path) -> dict[str, int]:
    position = read_position(data_dir)
    assert position is not None
    return {
        "dev": position.file.dev,
        "ino": position.file.ino,
        "offset": position.offset,
        "line_no": position.line_no,
    }


def rejects(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / REJECTS_FILENAME
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_dispatches_triggers_written_by_the_helpers(
    data_dir: Path, make_tail: Any, clock: FakeClock
) -> None:
    recorder = Recorder()
    tail = make_tail(recorder)
    refresh_id = trigger_refresh("out_of_range", POOL, data_dir=data_dir, clock=clock)
    trigger_episodes(3, data_dir=data_dir, clock=clock)
    clock.advance(5)
    report = await tail.drain_once()
    assert (report.lines, report.dispatched, report.rejected) == (2, 2, 0)
    refresh, more = recorder.seen
    assert isinstance(refresh, RefreshTrigger) and refresh.id == refresh_id
    assert refresh.pool_address == POOL.lower() and refresh.priorities == ("P0", "P1")
    assert isinstance(more, EpisodesTrigger) and more.count == 3 and more.line_no == 2
    stats = tail.stats
    size = trigger_path(data_dir).stat().st_size
    assert (stats.lines_processed, stats.dispatched, stats.offset, stats.line_no) == (2, 2, size, 2)
    assert stats.last_lag_s == 5.0
    info = trigger_path(data_dir).stat()
    assert saved_position(data_dir) == {
        "dev": info.st_dev,
        "ino": info.st_ino,
        "offset": size,
        "line_no": 2,
    }
    assert (await tail.drain_once()).lines == 0  # nothing is read twice


async def test_missing_file_is_waited_for(data_dir: Path, make_tail: Any) -> None:
    recorder = Recorder()
    tail = make_tail(recorder)
    assert (await tail.drain_once()).lines == 0
    assert read_position(data_dir) is None
    append(data_dir, episodes(1))
    assert (await tail.drain_once()).dispatched == 1


async def test_partial_last_line_is_processed_once_when_completed(
    data_dir: Path, make_tail: Any
) -> None:
    recorder = Recorder()
    tail = make_tail(recorder)
    append(data_dir, episodes(1), b'{"type": "episodes", "co')
    await tail.drain_once()
    assert recorder.counts == [1]
    first_line_end = len(orjson.dumps(episodes(1))) + 1
    assert tail.stats.offset == first_line_end
    assert saved_position(data_dir)["offset"] == first_line_end
    append(data_dir, b'unt": 2}')
    assert (await tail.drain_once()).lines == 0
    append(data_dir, b"\n", episodes(3))
    report = await tail.drain_once()
    assert (report.lines, report.rejected) == (2, 0)
    assert recorder.counts == [1, 2, 3]
    assert [t.line_no for t in recorder.seen] == [1, 2, 3]


async def test_truncation_restarts_from_the_beginning(
    data_dir: Path, make_tail: Any, captured_logs: CapturedLogs
) -> None:
    recorder = Recorder()
    tail = make_tail(recorder)
    append(data_dir, episodes(1), episodes(2), episodes(3))
    await tail.drain_once()
    trigger_path(data_dir).write_bytes(b"")  # truncate in place: same inode
    append(data_dir, episodes(4))
    report = await tail.drain_once()
    assert report.truncated and not report.rotated
    assert recorder.counts == [1, 2, 3, 4]
    assert recorder.seen[-1].line_no == 1
    assert captured_logs.events("trigger_file_truncated")
    assert saved_position(data_dir)["line_no"] == 1


async def test_rotation_finishes_the_old_file_then_reads_the_new_one(
    data_dir: Path, make_tail: Any, captured_logs: CapturedLogs
) -> None:
    recorder = Recorder()
    tail = make_tail(recorder)
    append(data_dir, episodes(1, id="a"), episodes(2))
    await tail.drain_once()
    append(data_dir, episodes(3), b'{"type": "episodes", "count": 4}')  # no newline at the end
    os.rename(trigger_path(data_dir), data_dir / "dune_triggers.jsonl.1")
    assert (await tail.drain_once()).lines == 1  # renamed away, no successor: old file still read
    append(data_dir, episodes(5), episodes(6, id="a"), episodes(7))
    report = await tail.drain_once()
    assert report.rotated
    assert recorder.counts == [1, 2, 3, 4, 5, 7]  # "a" was already seen in the old file
    assert [t.line_no for t in recorder.seen[-2:]] == [1, 3]
    assert captured_logs.events("trigger_file_rotated")
    assert saved_position(data_dir)["ino"] == trigger_path(data_dir).stat().st_ino
    assert (await tail.drain_once()).lines == 0


async def test_restart_resumes_without_loss_or_repeats(data_dir: Path, make_tail: Any) -> None:
    first = Recorder()
    tail = make_tail(first)
    append(data_dir, episodes(1), episodes(2), b'{"type": "episodes",')
    await tail.drain_once()
    tail.close()
    append(data_dir, b' "count": 3}\n', episodes(4))
    second = Recorder()
    # Lines carry no ids: only the saved offset can keep them from repeating.
    restarted = make_tail(second)
    await restarted.drain_once()
    assert first.counts == [1, 2]
    assert second.counts == [3, 4]
    assert [t.line_no for t in second.seen] == [3, 4]


async def test_restart_after_truncation_or_rotation_while_stopped(
    data_dir: Path, make_tail: Any, captured_logs: CapturedLogs
) -> None:
    tail = make_tail(Recorder())
    append(data_dir, episodes(1), episodes(2), episodes(3))
    await tail.drain_once()
    tail.close()
    trigger_path(data_dir).write_bytes(orjson.dumps(episodes(4)) + b"\n")  # shorter now
    after_truncation = Recorder()
    await make_tail(after_truncation).drain_once()
    assert after_truncation.counts == [4]
    assert captured_logs.events("trigger_file_truncated")

    os.rename(trigger_path(data_dir), data_dir / "old.jsonl")
    append(data_dir, episodes(5), episodes(6))  # a new inode, longer than the saved offset
    after_rotation = Recorder()
    await make_tail(after_rotation).drain_once()
    assert after_rotation.counts == [5, 6]
    assert captured_logs.events("trigger_file_rotated")


async def test_duplicate_ids_are_dispatched_once_even_across_restart(
    data_dir: Path, make_tail: Any, captured_logs: CapturedLogs
) -> None:
    recorder = Recorder()
    tail = make_tail(recorder)
    append(data_dir, episodes(1, id="job-1"), episodes(2, id="job-1"), episodes(3, id="job-2"))
    report = await tail.drain_once()
    assert (report.dispatched, report.duplicates) == (2, 1)
    tail.close()
    append(data_dir, episodes(4, id="job-2"), episodes(5, id="job-3"))
    restarted = make_tail(recorder)
    await restarted.drain_once()
    assert recorder.counts == [1, 3, 5]
    assert restarted.stats.duplicates == 1
    assert [e["line_no"] for e in captured_logs.events("trigger_duplicate")] == [2, 4]


async def test_bad_lines_are_rejected_with_line_numbers_and_good_ones_kept(
    data_dir: Path, make_tail: Any, captured_logs: CapturedLogs
) -> None:
    recorder = Recorder()
    tail = make_tail(recorder)
    binary = b"\x89PNG\r\x1a\x00\xff"
    oversized = b'{"type": "episodes", "pad": "' + b"x" * 70_000 + b'", "count": 1}\n'
    append(
        data_dir,
        episodes(1),
        b"{oops\n",  # 2
        episodes(2),
        oversized,  # 4
        binary + b"\n",  # 5
        episodes("3"),  # 6
        {"type": "reboot"},  # 7
        {"type": "refresh", "reason": "x", "pool_address": "0xnope"},  # 8
        episodes(9, id="../../etc"),  # 9
        b"[1, 2]\n",  # 10
        episodes(3),  # 11
    )
    report = await tail.drain_once()
    assert recorder.counts == [1, 2, 3]
    assert [t.line_no for t in recorder.seen] == [1, 3, 11]
    assert report.rejected == tail.stats.rejected == 8
    kept = rejects(data_dir)
    assert [r["line_no"] for r in kept] == [2, 4, 5, 6, 7, 8, 9, 10]
    warned = captured_logs.events("trigger_rejected")
    assert [w["line_no"] for w in warned] == [2, 4, 5, 6, 7, 8, 9, 10]
    by_line = {r["line_no"]: r for r in kept}
    assert f"{len(oversized)} bytes, over the 65536-byte limit" in by_line[4]["reason"]
    assert len(by_line[4]["line"].encode()) == 1024
    assert by_line[5]["line_encoding"] == "base64"
    assert base64.b64decode(by_line[5]["line"]) == binary
    assert '"3"' in by_line[6]["reason"] and "count" in by_line[6]["reason"]
    assert '"0xnope"' in by_line[8]["reason"]
    assert '"../../etc"' in by_line[9]["reason"]
    assert by_line[2]["line"] == "{oops"
    assert by_line[2]["offset"] == len(orjson.dumps(episodes(1))) + 1
    assert by_line[2]["rejected_at"] == utc_iso(FakeClock().now())


async def test_oversized_line_still_growing_is_not_buffered_whole(
    data_dir: Path, make_tail: Any
) -> None:
    recorder = Recorder()
    tail = make_tail(recorder, max_line_bytes=1024)
    append(data_dir, b"y" * 300_000)
    assert (await tail.drain_once()).lines == 0
    assert len(tail._lines._head) == 1024  # only the head of the line is kept
    append(data_dir, b"\n", episodes(1))
    report = await tail.drain_once()
    assert (report.rejected, recorder.counts) == (1, [1])


async def test_a_failing_handler_does_not_stop_the_tail(
    data_dir: Path, make_tail: Any, captured_logs: CapturedLogs
) -> None:
    recorder = Recorder(fail_on=frozenset({2}))
    tail = make_tail(recorder)
    append(data_dir, episodes(1), episodes(2, id="boom"), episodes(3))
    report = await tail.drain_once()
    assert recorder.counts == [1, 3]
    assert (report.handler_failures, tail.stats.handler_failures) == (1, 1)
    [failure] = captured_logs.events("trigger_handler_failed")
    assert failure["line_no"] == 2 and failure["id"] == "boom"
    assert saved_position(data_dir)["line_no"] == 3


async def test_a_storm_of_lines_is_processed_in_order(data_dir: Path, make_tail: Any) -> None:
    recorder = Recorder()
    tail = make_tail(recorder)
    append(data_dir, *(episodes(n + 1, id=f"storm-{n}") for n in range(1000)))
    report = await tail.drain_once()
    assert report.dispatched == 1000
    assert recorder.counts == list(range(1, 1001))
    assert saved_position(data_dir)["offset"] == trigger_path(data_dir).stat().st_size


async def test_corrupt_ledger_is_moved_aside_and_reading_goes_on_at_the_end(
    data_dir: Path, make_tail: Any, captured_logs: CapturedLogs
) -> None:
    first = Recorder()
    tail = make_tail(first)
    append(data_dir, episodes(1, id="one"), episodes(2, id="two"))
    await tail.drain_once()
    tail.close()
    tail._ledger.close()
    append(data_dir, episodes(3, id="three"))  # appended while the ledger is unreadable
    (data_dir / LEDGER_FILENAME).write_bytes(b"this is not a database" * 100)
    for extra in ("-wal", "-shm"):
        (data_dir / (LEDGER_FILENAME + extra)).unlink(missing_ok=True)
    second = Recorder()
    restarted = make_tail(second)
    await restarted.drain_once()
    # Never re-read from the start (old episodes triggers would run again): from the end.
    assert second.counts == []
    [warning] = captured_logs.events("trigger_ledger_corrupt")
    assert str(warning["moved_to"]).startswith(str(data_dir / LEDGER_FILENAME) + ".corrupt-")
    assert Path(str(warning["moved_to"])).exists()
    append(data_dir, episodes(4, id="four"))
    await restarted.drain_once()
    assert second.counts == [4]


async def test_legacy_offset_file_is_taken_over_once(
    data_dir: Path, make_tail: Any, captured_logs: CapturedLogs
) -> None:
    append(data_dir, episodes(1), episodes(2))
    first_line_end = len(orjson.dumps(episodes(1))) + 1
    info = trigger_path(data_dir).stat()
    legacy = data_dir / LEGACY_OFFSET_FILENAME
    legacy.write_bytes(
        orjson.dumps(
            {"dev": info.st_dev, "ino": info.st_ino, "offset": first_line_end, "line_no": 1}
        )
    )
    # A kill during the old atomic replace left its temp file behind.
    residue = data_dir / f".{LEGACY_OFFSET_FILENAME}.tmp-999999-abcd"
    residue.write_bytes(b'{"dev": 1')
    recorder = Recorder()
    await make_tail(recorder).drain_once()
    assert recorder.counts == [2]
    assert not legacy.exists() and not residue.exists()
    assert captured_logs.events("trigger_position_imported")


async def test_lag_is_measured_from_the_trigger_time(
    data_dir: Path, make_tail: Any, clock: FakeClock
) -> None:
    tail = make_tail(Recorder())
    append(data_dir, episodes(1, ts=utc_iso(clock.now() - timedelta(seconds=90))))
    await tail.drain_once()
    assert tail.stats.last_lag_s == 90.0


# -- run() ------------------------------------------------------------------------------


async def wait_for_count(recorder: Recorder, count: int, timeout_s: float = 30.0) -> None:
    async def arrived() -> None:
        while len(recorder.seen) < count:
            recorder.arrived.clear()
            await recorder.arrived.wait()

    await asyncio.wait_for(arrived(), timeout_s)


async def stop_run(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    await asyncio.wait_for(task, 30.0)


@pytest.mark.parametrize("watcher", ["inotify", "watchfiles"])
async def test_run_wakes_on_appends_and_rotation_via_the_directory_watch(
    watcher: str, data_dir: Path, make_tail: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if watcher == "watchfiles":
        pytest.importorskip("watchfiles", reason="watchfiles is installed off Linux and by [dev]")
        monkeypatch.setattr(trigger_watch, "_inotify", None)
    elif trigger_watch._inotify is None:
        pytest.skip("asyncinotify is Linux-only")
    recorder = Recorder()
    # An hour between polls: only the directory watch can deliver the later lines in time.
    tail = make_tail(recorder, clock=SystemClock(), poll_interval_s=3600)
    append(data_dir, episodes(1))
    stop = asyncio.Event()
    task = asyncio.create_task(tail.run(stop))
    try:
        await wait_for_count(recorder, 1)  # the first drain; the watch is set up by then
        async with tail._lock:  # that drain is over: nothing but a wake-up reads further
            await asyncio.to_thread(trigger_episodes, 2, data_dir=data_dir)
        await wait_for_count(recorder, 2)
        async with tail._lock:
            os.rename(trigger_path(data_dir), data_dir / "rotated.jsonl")
            await asyncio.to_thread(trigger_episodes, 3, data_dir=data_dir)
        await wait_for_count(recorder, 3)
    finally:
        await stop_run(task, stop)
    assert recorder.counts == [1, 2, 3]
    assert tail._fd is None  # run released the file


async def test_run_falls_back_to_polling_when_the_watch_fails(
    data_dir: Path,
    make_tail: Any,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    captured_logs: CapturedLogs,
) -> None:
    async def broken_watch(*args: Any, **kwargs: Any) -> None:
        raise OSError("inotify watch limit reached")

    monkeypatch.setattr(trigger_watch, "watch_watchfiles", broken_watch)
    monkeypatch.setattr(trigger_watch, "watch_inotify", broken_watch)
    recorder = Recorder()
    tail = make_tail(recorder, poll_interval_s=2.0)
    append(data_dir, episodes(1))
    stop = asyncio.Event()
    task = asyncio.create_task(tail.run(stop))
    try:
        await wait_for_count(recorder, 1)
        append(data_dir, episodes(2))
        await wait_for_count(recorder, 2)
    finally:
        await stop_run(task, stop)
    assert recorder.counts == [1, 2]
    assert 2.0 in clock.slept
    assert captured_logs.events("trigger_watch_failed")
