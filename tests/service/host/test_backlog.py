from __future__ import annotations

import asyncio

from clmmd.service.host.backlog import EpisodeBacklog, Owed


async def test_owed_episodes_come_in_order_and_a_given_back_one_first() -> None:
    backlog = EpisodeBacklog()
    backlog.add("a", 2)
    backlog.add(None, 1)
    backlog.add("b", 0)  # nothing owed: nothing added
    assert len(backlog) == 3
    assert backlog.take_nowait() == Owed("a")
    backlog.give_back("a")
    assert [backlog.take_nowait() for _ in range(3)] == [Owed("a"), Owed("a"), Owed(None)]
    assert backlog.take_nowait() is None and len(backlog) == 0


async def test_take_waits_for_work() -> None:
    backlog = EpisodeBacklog()
    waiter = asyncio.ensure_future(backlog.take())
    await asyncio.sleep(0)
    assert not waiter.done()
    backlog.add("t", 1)
    assert await asyncio.wait_for(waiter, 5) == Owed("t")
