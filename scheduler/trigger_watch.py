"""How the trigger tail learns that there is something to read: a directory watch, and a poll.

The watch is on the *directory*, not the file, so appends, a new file after rotation and
renames all show up. On Linux it is inotify straight into the event loop (asyncinotify);
elsewhere watchfiles. A watch can fail (e.g. out of inotify watches) or miss an event, so
:func:`wait_for_work` also wakes every poll interval: the watch is for latency, the poll for
certainty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

try:  # Linux: inotify straight into the event loop (no polling thread)
    import asyncinotify as _inotify
except ImportError:  # elsewhere: watchfiles
    _inotify = None  # type: ignore[assignment]

from clmmd.artifacts.base.clock import Clock
from clmmd.artifacts.base.waiting import first_of

log = structlog.get_logger(__name__)

# watchfiles groups events: wait at most this long (ms) for quiet before reporting.
_WATCH_STEP_MS = 5
_WATCH_DEBOUNCE_MS = 100
_WATCH_SHUTDOWN_S = 10.0


@contextlib.asynccontextmanager
async def directory_watch(
    directory: Path, filename: str, *, poll_interval_s: float
) -> AsyncIterator[asyncio.Event]:
    """An event set on every change to ``filename`` in ``directory``, while the block runs.

    A watch that fails is logged (``trigger_watch_failed``) and not retried: the caller's poll
    every ``poll_interval_s`` carries on. On exit the watch is given a few seconds to stop.
    """
    wake = asyncio.Event()
    watch_stop = asyncio.Event()
    watcher = asyncio.create_task(
        _watch(directory, filename, wake, watch_stop, poll_interval_s=poll_interval_s)
    )
    try:
        yield wake
    finally:
        watch_stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher, _WATCH_SHUTDOWN_S)


async def wait_for_work(
    stop: asyncio.Event, wake: asyncio.Event, clock: Clock, poll_interval_s: float
) -> None:
    """Return when ``stop`` or ``wake`` is set, or after ``poll_interval_s`` on ``clock``."""
    await first_of(stop.wait(), wake.wait(), clock.sleep(poll_interval_s))


async def _watch(
    directory: Path,
    filename: str,
    wake: asyncio.Event,
    watch_stop: asyncio.Event,
    *,
    poll_interval_s: float,
) -> None:
    try:
        if _inotify is not None:
            await watch_inotify(directory, filename, wake, watch_stop)
        else:
            await watch_watchfiles(directory, filename, wake, watch_stop)
    except Exception as exc:  # e.g. out of inotify watches: the stat poll carries on
        log.warning(
            "trigger_watch_failed",
            error=f"{type(exc).__name__}: {exc}",
            poll_interval_s=poll_interval_s,
        )


async def watch_inotify(
    directory: Path, filename: str, wake: asyncio.Event, watch_stop: asyncio.Event
) -> None:
    """Set ``wake`` on every inotify event for ``filename`` in ``directory`` until
    ``watch_stop``; Linux only."""
    # inotify on the *directory*: appends, a new file after rotation and renames all show
    # up, the wake-up is immediate, and an idle daemon spends no CPU here (watchfiles'
    # Rust loop wakes every `step` ms, which at the 5 ms needed for latency costs ~1 % CPU).
    assert _inotify is not None
    mask = (
        _inotify.Mask.MODIFY
        | _inotify.Mask.CLOSE_WRITE
        | _inotify.Mask.CREATE
        | _inotify.Mask.MOVED_TO
        | _inotify.Mask.MOVED_FROM
        | _inotify.Mask.DELETE
        | _inotify.Mask.ATTRIB
    )
    with _inotify.Inotify() as inotify:
        inotify.add_watch(directory, mask)
        stopper = asyncio.ensure_future(watch_stop.wait())
        try:
            while True:
                getter = asyncio.ensure_future(inotify.get())
                await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper.done():
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                    return
                event = getter.result()
                if event.name is None or event.name.name == filename:
                    wake.set()
        finally:
            stopper.cancel()


async def watch_watchfiles(
    directory: Path, filename: str, wake: asyncio.Event, watch_stop: asyncio.Event
) -> None:
    """Set ``wake`` on every watchfiles change batch for ``filename`` in ``directory`` until
    ``watch_stop`` (the portable fallback; its Rust loop polls every few ms).

    watchfiles is a dependency only where asyncinotify is not (off Linux): imported here."""
    from watchfiles import Change, awatch

    def is_watched_file(change: Change, path: str) -> bool:
        return os.path.basename(path) == filename

    async for _changes in awatch(
        directory,
        watch_filter=is_watched_file,
        debounce=_WATCH_DEBOUNCE_MS,
        step=_WATCH_STEP_MS,
        stop_event=watch_stop,
        recursive=False,
    ):
        wake.set()
