"""Retention: keep the newest N runs, never a live writer's run, never outside the data dir."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.artifacts.layout import RunLayout, list_runs
from clmmd.artifacts.retention import DELETING_MARKER, RetentionError, clean, plan_removals
from clmmd.service.cli.main import main

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _run(data_dir: Path, day: int, *, active_pid: int | None = None) -> RunLayout:
    layout = RunLayout(data_dir, f"run_202603{day:02d}_120000_abcd")
    (layout.episode_dir("ep_000001")).mkdir(parents=True)
    (layout.episode_dir("ep_000001") / "proposal.json").write_text("{}")
    if active_pid is not None:
        layout.active_marker.write_text(str(active_pid))
    return layout


def _ids(data_dir: Path) -> list[str]:
    return [layout.run_id for layout in list_runs(data_dir)]


@given(
    runs=st.lists(st.integers(0, 10**6), unique=True, max_size=30),
    keep=st.integers(0, 40),
)
def test_plan_removes_exactly_the_oldest_beyond_keep(runs: list[int], keep: int) -> None:
    ids = [f"run_{n:08d}" for n in runs]
    doomed = plan_removals(ids, keep)
    survivors = sorted(set(ids) - set(doomed))
    assert len(survivors) == min(keep, len(ids))
    assert all(d < s for d in doomed for s in survivors)


def test_plan_refuses_negative_keep() -> None:
    with pytest.raises(ValueError, match="keep"):
        plan_removals(["a"], -1)


def test_keeps_the_newest_and_removes_the_rest(tmp_path: Path) -> None:
    layouts = [_run(tmp_path, day) for day in range(1, 6)]
    report = clean(tmp_path, 2, NOW)
    assert report.removed == [layouts[0].run_id, layouts[1].run_id, layouts[2].run_id]
    assert report.kept == [layouts[3].run_id, layouts[4].run_id]
    assert _ids(tmp_path) == report.kept
    # Nothing hidden is left behind either.
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == report.kept


def test_dry_run_removes_nothing(tmp_path: Path) -> None:
    for day in range(1, 4):
        _run(tmp_path, day)
    report = clean(tmp_path, 1, NOW, dry_run=True)
    assert len(report.removed) == 2
    assert len(_ids(tmp_path)) == 3


def test_never_removes_a_run_a_live_process_writes(tmp_path: Path) -> None:
    live = _run(tmp_path, 1, active_pid=os.getppid())  # our parent: alive, and not us
    dead = _run(tmp_path, 2, active_pid=999_999_999)  # a pid that does not exist
    newest = _run(tmp_path, 3)
    report = clean(tmp_path, 0, NOW)
    assert report.skipped_active == [live.run_id]
    assert report.removed == [dead.run_id, newest.run_id]
    assert _ids(tmp_path) == [live.run_id]


def test_symlinked_run_is_neither_followed_nor_removed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    outside = tmp_path / "precious"
    (outside / "episodes").mkdir(parents=True)
    (outside / "keep-me.txt").write_text("not clmmd's to delete")
    (data_dir / "runs").mkdir(parents=True)
    link = data_dir / "runs" / "run_20260101_000000_0000"
    link.symlink_to(outside, target_is_directory=True)
    _run(data_dir, 1)
    report = clean(data_dir, 0, NOW)
    assert report.skipped_symlink == [link.name]
    assert link.is_symlink() and (outside / "keep-me.txt").exists()


def test_links_inside_a_removed_run_are_unlinked_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep-me.txt").write_text("x")
    layout = _run(tmp_path / "data", 1)
    (layout.run_dir / "escape").symlink_to(outside, target_is_directory=True)
    assert clean(tmp_path / "data", 0, NOW).removed == [layout.run_id]
    assert (outside / "keep-me.txt").exists()


def test_refuses_when_runs_folder_is_a_link_out_of_the_data_dir(tmp_path: Path) -> None:
    real_runs = tmp_path / "elsewhere"
    real_runs.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "runs").symlink_to(real_runs, target_is_directory=True)
    with pytest.raises(RetentionError, match="CLMMD_DATA_DIR"):
        clean(tmp_path / "data", 0, NOW)


def test_leftovers_of_an_interrupted_clean_are_removed(tmp_path: Path) -> None:
    _run(tmp_path, 1)
    leftover = tmp_path / "runs" / f".run_20260101_000000_0000{DELETING_MARKER}20260101000000"
    (leftover / "episodes").mkdir(parents=True)
    report = clean(tmp_path, 5, NOW)
    assert report.leftovers_removed == [leftover.name] and not leftover.exists()
    assert report.removed == [] and len(_ids(tmp_path)) == 1


def test_empty_and_missing_data_dir(tmp_path: Path) -> None:
    assert clean(tmp_path / "nothing-here", 3, NOW).removed == []
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    assert clean(tmp_path / "empty", 3, NOW).kept == []


def test_cli_clean_on_real_runs(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    for seed in (1, 2, 3):
        assert main(["campaign", "--episodes", "2", "--seed", str(seed)]) == 0
    runs = _ids(data_dir)
    assert len(runs) == 3
    # A run still being written (its writer alive) is protected even when it is the oldest.
    RunLayout(data_dir, runs[0]).active_marker.write_text(str(os.getppid()))
    capsys.readouterr()
    assert main(["clean", "--keep", "1", "--dry-run"]) == 0
    assert f"would remove {runs[1]}" in capsys.readouterr().out
    assert _ids(data_dir) == runs
    assert main(["clean", "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert f"removed {runs[1]}" in out and "still being written" in out
    assert _ids(data_dir) == [runs[0], runs[2]]
    assert main(["runs", "validate", runs[2]]) == 0


def test_cli_clean_on_an_empty_data_dir(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clean", "--keep", "3"]) == 0
    assert "removed 0 run(s)" in capsys.readouterr().out


@pytest.mark.parametrize("keep", ["-1", "many"])
def test_cli_clean_bad_keep_exits_2(keep: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["clean", "--keep", keep])
    assert exc.value.code == 2
    assert keep in capsys.readouterr().err
