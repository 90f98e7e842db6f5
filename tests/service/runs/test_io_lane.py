"""IoLane: blocking calls on one thread, drained in batches, results back on the loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from clmmd.service.runs.io_lane import IoLane


class Boom(Exception):
    pass


async def test_results_and_exceptions_come_back_to_the_caller() -> None:
    lane = IoLane()

    def fail() -> None:
        raise Boom("disk gone")

    assert await lane.run(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(Boom, match="disk gone"):
        await lane.run(fail)
    assert await lane.run(str, 7) == "7"  # the lane survives a failed call


async def test_calls_run_off_the_loop_thread_one_thread_in_submission_order() -> None:
    lane = IoLane()
    seen: list[tuple[int, str]] = []

    def record(index: int) -> None:
        seen.append((index, threading.current_thread().name))

    await asyncio.gather(*(lane.run(record, i) for i in range(50)))
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"io-lane"}
    assert threading.current_thread().name != "io-lane"


async def test_calls_queued_while_the_thread_works_run_as_one_batch_with_one_wakeup() -> None:
    lane = IoLane()
    release = threading.Event()
    started = threading.Event()

    def first() -> str:
        started.set()
        release.wait(10)
        return "first"

    head = asyncio.ensure_future(lane.run(first))
    await asyncio.to_thread(started.wait, 10)
    queued = [asyncio.ensure_future(lane.run(lambda i=i: i * i)) for i in range(20)]
    await asyncio.sleep(0)  # every call is queued behind the blocked one
    release.set()
    assert await head == "first"
    assert await asyncio.gather(*queued) == [i * i for i in range(20)]
    # One delivery for the first call, one for the 20 that queued behind it.
    assert lane.wakeups == 2


async def test_the_thread_ends_when_idle_and_a_new_call_starts_it_again() -> None:
    lane = IoLane(idle_exit_s=0.0, name="io-lane-idle-test")
    assert await lane.run(int, "1") == 1
    for thread in [t for t in threading.enumerate() if t.name == lane.name]:
        await asyncio.to_thread(thread.join, 10)
    assert not lane.running
    assert await lane.run(int, "2") == 2


async def test_a_cancelled_caller_does_not_break_the_lane() -> None:
    lane = IoLane()
    release = threading.Event()
    call = asyncio.ensure_future(lane.run(release.wait, 10))
    await asyncio.sleep(0)
    call.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await lane.run(int, "4") == 4
