"""Item 6 of issue 13: Ctrl-C or SIGTERM during ``clmmd campaign``.

Before: the campaign died mid-episode, leaving unfinished folders (14 violations) and a stale
metrics_summary.json until some later start recovered them, with no word about it. Now it stops
taking episodes, lets the running ones finish (or completes them as ``interrupted`` when told
twice), writes the final summary, says what happened and exits 130 (SIGINT) or 143 (SIGTERM):
the run validates at once.
"""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from clmmd.artifacts.layout import list_runs
from clmmd.artifacts.validate import validate_run
from tests.reliability._harness import DaemonProcess, daemon_env, record_figures, wait_until


def _folders(data_dir: Path) -> int:
    return sum(len(layout.episode_dirs()) for layout in list_runs(data_dir))


@pytest.mark.parametrize(
    ("signals", "status"),
    [((signal.SIGINT,), 130), ((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)],
    ids=["sigint", "sigterm", "sigint-twice"],
)
def test_an_interrupted_campaign_leaves_a_valid_run_and_says_so(
    tmp_path: Path, signals: tuple[signal.Signals, ...], status: int
) -> None:
    data_dir = tmp_path / "data"
    campaign = DaemonProcess(
        daemon_env(data_dir, CLMMD_EPISODE_WORKERS="4"),
        tmp_path / "out",
        "campaign",
        "--episodes",
        "100000",
        command="campaign",
    )
    try:
        assert wait_until(lambda: _folders(data_dir) >= 30, 60), campaign.stderr()
        for signum in signals:
            campaign.signal(signum)
        code = campaign.wait(60)
    finally:
        campaign.kill9()
    err = campaign.stderr()
    assert code == status, err
    assert "Traceback" not in err
    name = signal.Signals(signals[0]).name
    # Piped, the campaign speaks JSON: its last line is the summary, saying what stopped it.
    (said,) = [e for e in campaign.events() if e.get("event") == "campaign_summary"]
    assert said["interrupted_by"] == name, said
    assert said["not_started"] > 0 and said["interrupted"] >= 0
    (run,) = list_runs(data_dir)
    assert validate_run(run) == []  # now, not after some later start
    summary = orjson.loads(run.summary_path.read_bytes())
    assert summary["episodes"] == len(run.episode_dirs())
    assert not run.active_marker.exists()
    events = [e.get("event") for e in campaign.events()]
    assert "campaign_interrupted" in events
    record_figures(
        f"campaign_interrupt_{'_'.join(signal.Signals(s).name for s in signals)}",
        exit_status=code,
        episodes=summary["episodes"],
        interrupted=said["interrupted"],
        not_started=said["not_started"],
    )
