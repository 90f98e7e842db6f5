"""Waiting for the first of several things (a sleep on the clock, an event, a task), and
answering a future whose waiter may have gone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def first_of(*awaitables: Awaitable[object]) -> None:
    """Return as soon as one of ``awaitables`` is done; the others are cancelled and awaited,
    so no waiter outlives the call. Futures passed in are cancelled too: pass
    ``asyncio.shield(f)`` or ``event.wait()`` for things that must go on."""
    waiters = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    """Give ``future`` its ``error`` (when not None) or ``result``, unless it is already done
    (its waiter was cancelled): the answer of work that ran elsewhere (a thread, a process)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


__all__ = ["first_of", "settle"]
