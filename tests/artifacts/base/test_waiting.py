from __future__ import annotations

import asyncio

import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.base.waiting import first_of, settle


async def test_returns_with_the_first_and_leaves_no_waiter_behind() -> None:
    event = asyncio.Event()
    long_sleep = asyncio.ensure_future(asyncio.sleep(3600))
    event.set()
    await asyncio.wait_for(first_of(event.wait(), long_sleep), 5)
    assert long_sleep.cancelled()


async def test_a_shielded_task_goes_on() -> None:
    done = asyncio.Event()

    async def work() -> str:
        await done.wait()
        return "finished"

    task = asyncio.ensure_future(work())
    await first_of(asyncio.shield(task), FakeClock().sleep(1))
    assert not task.done()
    done.set()
    assert await task == "finished"


async def test_settle_answers_a_waiting_future_and_leaves_a_done_one_alone() -> None:
    loop = asyncio.get_running_loop()
    ok, failed, gone = loop.create_future(), loop.create_future(), loop.create_future()
    settle(ok, 7, None)
    settle(failed, None, OSError("disk full"))
    gone.cancel()
    settle(gone, 8, None)  # its waiter went away: no InvalidStateError
    assert ok.result() == 7
    with pytest.raises(OSError, match="disk full"):
        failed.result()
    assert gone.cancelled()
