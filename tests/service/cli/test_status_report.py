from __future__ import annotations

from pathlib import Path

from clmmd.artifacts.base.clock import FakeClock
from clmmd.scheduler.trigger_ledger import TriggerLedger
from clmmd.scheduler.trigger_position import FileId, Position
from clmmd.scheduler.triggers import trigger_episodes
from clmmd.service.cli.status_report import daemon_line, daemon_status, trigger_line


def test_trigger_line_before_and_after_a_daemon_read(tmp_path: Path) -> None:
    assert "no trigger file yet" in trigger_line(tmp_path)
    trigger_episodes(2, data_dir=tmp_path)
    size = (tmp_path / "dune_triggers.jsonl").stat().st_size
    assert f"{size} bytes" in trigger_line(tmp_path) and "not read by a daemon yet" in trigger_line(
        tmp_path
    )
    ledger = TriggerLedger.open(tmp_path, FakeClock().now(), durable=False)
    ledger.save_position(Position(FileId(1, 2), 10, 1))
    ledger.close()
    (tmp_path / "dune_triggers.rejects.jsonl").write_text('{"line_no": 1}\n{"line_no": 2}\n')
    line = trigger_line(tmp_path)
    assert f"offset 10 of {size} bytes, {size - 10} unread" in line
    assert "2 rejected" in line


def test_daemon_line_when_absent_and_present() -> None:
    assert "not reachable (127.0.0.1:1/status)" in daemon_line(None, "127.0.0.1:1")
    assert "CLMMD_HTTP_LISTEN=off" in daemon_line(None, "off")
    line = daemon_line(
        {
            "run_id": "run_x",
            "episodes": {"finished": 3, "running": 1, "queued": 2},
            "refresh": {"workers": 3, "in_flight": ["a"], "ticks": 5},
            "stopping": False,
        },
        "127.0.0.1:9321",
    )
    assert line == (
        "daemon: running, run run_x; episodes finished 3, running 1, queued 2; "
        "refresh workers 3, in flight 1, ticks 5"
    )
    degraded = daemon_line(
        {
            "run_id": "run_x",
            "health": {"status": "degraded", "reasons": ["runs/ not writable: disk full"]},
            "episodes": {"finished": 3, "running": 0, "queued": 9, "lost": {"disk_full": 4}},
            "workers": {"alive": 2, "configured": 2},
            "refresh": {"workers": 3, "in_flight": [], "ticks": 5},
        },
        "127.0.0.1:9321",
    )
    assert degraded == (
        "daemon: running, run run_x; episodes finished 3, running 0, queued 9, lost 4 "
        "(disk_full 4); episode workers alive 2/2; refresh workers 3, in flight 0, ticks 5\n"
        "health: degraded\n  - runs/ not writable: disk full"
    )


def test_daemon_status_is_none_when_nothing_listens() -> None:
    assert daemon_status(None) is None
    assert daemon_status(("127.0.0.1", 1), timeout_s=0.5) is None
