"""Waiting for the first of several things (a sleep on the clock, an event, a task)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


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


__all__ = ["first_of"]
