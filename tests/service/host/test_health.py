from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from clmmd.service.host.health import DiskProbe, LostEpisodes
from clmmd.service.runs.losses import lost_reason


def test_lost_reasons() -> None:
    assert lost_reason(OSError(errno.ENOSPC, "No space left on device")) == "disk_full"
    assert lost_reason(OSError(errno.EDQUOT, "Disk quota exceeded")) == "disk_full"
    assert lost_reason(OSError(errno.EACCES, "Permission denied")) == "io_error"
    assert lost_reason(sqlite3.OperationalError("database or disk is full")) == "disk_full"
    assert lost_reason(ValueError("bug")) == "other"


def test_losing_until_an_episode_is_saved() -> None:
    lost = LostEpisodes()
    lost.lost(OSError(errno.ENOSPC, "No space left on device"))
    assert lost.losing and lost.total == 1 and lost.last_error == "No space left on device"
    assert lost.as_dict() == {"disk_full": 1, "io_error": 0, "other": 0}
    lost.saved()
    assert not lost.losing and lost.total == 1


class _BrokenCache:
    def probe(self) -> None:
        raise sqlite3.OperationalError("disk I/O error")


def test_the_probe_names_what_cannot_be_written(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    probe = DiskProbe(runs, _BrokenCache())  # type: ignore[arg-type]
    assert probe.check() == {"cache": "cache unusable: OperationalError: disk I/O error"}
    assert list(runs.iterdir()) == []  # the probe file does not stay
    runs.rmdir()
    runs.write_text("a file where runs/ should be")
    problems = DiskProbe(runs, None).check()
    assert problems["runs"].startswith("runs/ not writable")


async def test_a_dead_worker_makes_the_daemon_degraded(tmp_path: Path) -> None:
    import asyncio

    from clmmd.env.mock import MockClmmEnv
    from clmmd.service.config import load_settings
    from clmmd.service.host.daemon import Daemon
    from clmmd.service.host.notify import SystemdNotifier

    settings = load_settings(
        data_dir=tmp_path / "data", seed=3, durable_writes=False, http_listen="off"
    )
    settings = settings.model_copy(update={"episode_workers": 2})
    daemon = Daemon(
        settings, env=MockClmmEnv(), install_signals=False, notifier=SystemdNotifier(None)
    )
    task = asyncio.create_task(daemon.run())
    for _ in range(500):
        if len(daemon._workers) == 2 and daemon.scheduler and daemon.scheduler.running:
            break
        await asyncio.sleep(0.02)
    assert daemon.health() == []
    daemon._workers[0].cancel()  # what a bug in a worker would do
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert "episode workers dead: 1 of 2 alive" in daemon.health()
    daemon.observer.update_gauges()
    assert daemon.metrics.registry.get_sample_value("clmmd_episode_workers_alive") == 1
    assert daemon.metrics.registry.get_sample_value("clmmd_healthy") == 0
    daemon.request_stop("test")
    assert await asyncio.wait_for(task, 30) == 0
