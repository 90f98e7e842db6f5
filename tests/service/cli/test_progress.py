"""Campaign progress: a bar with ep/s and ETA on a terminal, JSON log lines elsewhere."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.service.cli.main import main
from clmmd.service.cli.progress import (
    BAR_WIDTH,
    CampaignProgress,
    ProgressSnapshot,
    format_duration,
    format_line,
)
from tests.conftest import CapturedLogs

OK = EpisodeRecord(status="success")
FAILED = EpisodeRecord(status="failed")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "--:--"), (0, "0:00"), (59.6, "1:00"), (75, "1:15"), (3725, "1:02:05")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_line_shows_count_rate_eta_and_failures() -> None:
    line = format_line(ProgressSnapshot(done=10, total=40, failed=2, elapsed_s=4.0))
    assert "10/40 episodes" in line
    assert "2.5 ep/s" in line
    assert "ETA 0:12" in line  # 30 left at 2.5/s
    assert "2 failed" in line
    assert line.startswith("[" + "#" * (BAR_WIDTH // 4))


def test_unknown_rate_before_anything_finished() -> None:
    line = format_line(ProgressSnapshot(done=0, total=5, failed=0, elapsed_s=0.0))
    assert "- ep/s" in line and "ETA --:--" in line and "failed" not in line


@given(
    total=st.integers(1, 10_000),
    data=st.data(),
    elapsed=st.floats(0.001, 1e6),
)
def test_bar_is_fixed_width_and_proportional(
    total: int, data: st.DataObject, elapsed: float
) -> None:
    done = data.draw(st.integers(0, total))
    snap = ProgressSnapshot(done=done, total=total, failed=0, elapsed_s=elapsed)
    bar = format_line(snap).split("]")[0][1:]
    assert len(bar) == BAR_WIDTH
    assert bar.count("#") == int(done / total * BAR_WIDTH)
    if done == total:
        assert snap.eta_s == 0.0
    elif done:
        assert snap.eta_s is not None and snap.eta_s > 0


def test_terminal_redraws_in_place_and_ends_the_line(clock: FakeClock) -> None:
    stream = _Tty()
    progress = CampaignProgress(3, clock, stream=stream)
    assert progress.interactive
    for record in (OK, FAILED, OK):
        clock.advance(1.0)
        progress.episode_done(record)
    progress.close()
    progress.close()  # idempotent
    text = stream.getvalue()
    frames = text.split("\r\x1b[K")[1:]
    assert len(frames) == 3
    assert frames[-1].startswith("[" + "#" * BAR_WIDTH + "]")
    assert "3/3 episodes  1.0 ep/s  ETA 0:00  1 failed" in frames[-1]
    assert text.endswith("\n") and text.count("\n") == 1


def test_terminal_redraws_are_throttled_but_the_last_is_always_drawn(clock: FakeClock) -> None:
    stream = _Tty()
    progress = CampaignProgress(100, clock, stream=stream, redraw_every_s=0.5)
    for _ in range(100):
        clock.advance(0.01)
        progress.episode_done(OK)
    frames = stream.getvalue().split("\r\x1b[K")[1:]
    assert len(frames) == 3  # first, one after 0.5 s, and the final 100/100
    assert "100/100" in frames[-1]


def test_not_a_terminal_logs_json_lines_instead(
    clock: FakeClock, captured_logs: CapturedLogs
) -> None:
    stream = io.StringIO()
    progress = CampaignProgress(4, clock, stream=stream, log_every_s=10.0)
    assert not progress.interactive
    for record in (OK, OK, FAILED, OK):
        clock.advance(2.0)
        progress.episode_done(record)
    progress.close()
    assert stream.getvalue() == ""
    events = captured_logs.events("campaign_progress")
    assert [e["done"] for e in events] == [1, 4]  # the first, then (under 10 s later) the last
    assert events[-1]["eps_per_s"] == 0.5 and events[-1]["eta_s"] == 0.0
    assert events[-1]["failed"] == 1


def test_cli_campaign_off_a_terminal_logs_progress(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    assert main(["campaign", "--episodes", "3", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "ep/s" not in captured.err
    lines = [orjson.loads(x) for x in captured.out.splitlines() if x.startswith("{")]
    progress = [x for x in lines if x.get("event") == "campaign_progress"]
    assert progress and progress[-1]["done"] == 3 and progress[-1]["total"] == 3
