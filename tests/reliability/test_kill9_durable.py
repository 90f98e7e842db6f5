"""kill -9 with durable writes: a simulated episode's folder is made by its one write (after
the simulation, with its last files) and campaigns pipeline; every restart still validates,
every folder a kill left unfinished is completed as interrupted, and triggers run exactly once.

The daemon trials are those of ``test_kill9.py`` (which runs with ``CLMMD_DURABLE_WRITES=false``);
the campaign is killed mid-run, with episodes computing and others finishing on disk."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from clmmd.artifacts.layout import list_runs
from clmmd.artifacts.validate import validate_run
from tests.reliability import test_kill9
from tests.reliability._harness import DaemonProcess, daemon_env, json_file_problems, wait_until


def test_kill9_durable_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def durable_env(data_dir: Path, **extra: str) -> dict[str, str]:
        return daemon_env(data_dir, **{"CLMMD_DURABLE_WRITES": "true", **extra})

    monkeypatch.setattr(test_kill9, "daemon_env", durable_env)
    figures = test_kill9.kill_trials(tmp_path, trials=4, seed=8, per_trial=200)
    assert figures["restarts_validated"] >= 1


def _folders(data_dir: Path) -> int:
    return sum(len(layout.episode_dirs()) for layout in list_runs(data_dir))


@pytest.mark.parametrize("after_folders", [5, 60, 200])
def test_a_pipelined_durable_campaign_killed_validates_after_the_next_start(
    tmp_path: Path, after_folders: int
) -> None:
    data_dir = tmp_path / "data"
    env = daemon_env(data_dir, CLMMD_DURABLE_WRITES="true", CLMMD_EPISODE_WORKERS="4")
    campaign = DaemonProcess(
        env, tmp_path / "out", "campaign", "--episodes", "100000", command="campaign"
    )
    try:
        assert wait_until(lambda: _folders(data_dir) >= after_folders, 60), campaign.stderr()
    finally:
        campaign.kill9()
    (killed,) = list_runs(data_dir)
    unfinished = test_kill9._unfinished(killed.run_dir)  # neither result nor failure
    # The next start recovers the killed run: it validates, its unfinished folders completed
    # as interrupted (none invented), and the new run validates too.
    again = DaemonProcess(env, tmp_path / "out", "again", "--episodes", "3", command="campaign")
    assert again.wait(120) == 0, again.stderr()
    assert validate_run(killed) == []
    interrupted = [
        d
        for d in killed.episode_dirs()
        if (d / "failure.json").exists()
        and orjson.loads((d / "failure.json").read_bytes())["stage"] == "interrupted"
    ]
    assert len(interrupted) == unfinished
    for episode in killed.episode_dirs():  # killed after result.json: completed, not failed
        assert (episode / "metadata.json").exists(), episode
    assert [validate_run(layout) for layout in list_runs(data_dir)] == [[], []]
    assert json_file_problems(data_dir) == []
