from __future__ import annotations

import json
from pathlib import Path

from clmmd.scheduler.triggers import trigger_episodes
from clmmd.service.cli.status_report import daemon_line, daemon_status, trigger_line


def test_trigger_line_before_and_after_a_daemon_read(tmp_path: Path) -> None:
    assert "no trigger file yet" in trigger_line(tmp_path)
    trigger_episodes(2, data_dir=tmp_path)
    size = (tmp_path / "dune_triggers.jsonl").stat().st_size
    assert f"{size} bytes" in trigger_line(tmp_path) and "not read by a daemon yet" in trigger_line(
        tmp_path
    )
    (tmp_path / "dune_triggers.offset.json").write_text(
        json.dumps({"dev": 1, "ino": 2, "offset": 10, "line_no": 1})
    )
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


def test_daemon_status_is_none_when_nothing_listens() -> None:
    assert daemon_status(None) is None
    assert daemon_status(("127.0.0.1", 1), timeout_s=0.5) is None
