"""``IoLane``: short blocking calls off the event loop, with as few thread wake-ups as possible.

``asyncio.to_thread`` wakes a pool thread for every call and the loop once per result, and
concurrent calls run on several threads that pass the GIL back and forth at every system call.
Episode writes that do not fsync are short kernel work, and at hundreds of episodes per second
those wake-ups and hand-offs cost more CPU than the writes themselves (docs/performance.md,
"Where an episode's CPU goes"). A lane is one thread: it takes every call queued since it last
looked, runs them in submission order, and reports all their results to the loop in one
wake-up. Calls that wait on the disk (fsync) belong in a thread pool instead, where they overlap.

The thread starts on demand and ends after ``idle_exit_s`` without work, so a lane needs no
closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from clmmd.artifacts.base.waiting import settle

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Done = tuple["asyncio.Future[Any]", Any, BaseException | None]


class IoLane:
    """Runs blocking callables on one thread, in order, for asyncio callers."""

    def __init__(self, *, idle_exit_s: float = 1.0, name: str = "io-lane") -> None:
        self.idle_exit_s = idle_exit_s
        self.name = name
        self.running = False
        self.wakeups = 0  # loop wake-ups used to deliver results (tests, profiling)
        self._waiting = False
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the lane's thread; its result or exception comes back here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._cond:
            self._jobs.append((loop, future, fn, args))
            if self._waiting:
                self._cond.notify()
            elif not self.running:
                self.running = True
                threading.Thread(target=self._work, name=self.name, daemon=True).start()
        return await future

    def _take(self) -> list[_Job] | None:
        """Every queued call, or None when the thread should end (no work for a while)."""
        with self._cond:
            if not self._jobs:
                self._waiting = True
                self._cond.wait(self.idle_exit_s)
                self._waiting = False
            if not self._jobs:
                self.running = False
                return None
            jobs = list(self._jobs)
            self._jobs.clear()
            return jobs

    def _work(self) -> None:
        while (jobs := self._take()) is not None:
            done: dict[asyncio.AbstractEventLoop, list[_Done]] = {}
            for loop, future, fn, args in jobs:
                try:
                    outcome: _Done = (future, fn(*args), None)
                except BaseException as exc:  # delivered to the caller; the lane goes on
                    outcome = (future, None, exc)
                done.setdefault(loop, []).append(outcome)
            for loop, outcomes in done.items():
                self.wakeups += 1
                # A closed loop raises RuntimeError: nobody is waiting for these any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_deliver, outcomes)


def _deliver(outcomes: list[_Done]) -> None:
    for future, result, exc in outcomes:
        settle(future, result, exc)
