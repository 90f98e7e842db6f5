"""Run and episode ids, where files live, and which folders count as runs and episodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.artifacts.layout import (
    EPISODE_ID_RE,
    RUN_ID_RE,
    RunLayout,
    episode_id,
    list_runs,
    new_run_id,
    resolve_run,
)
from clmmd.artifacts.writer import TEMP_MARKER

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_run_id_has_the_documented_shape_and_names_its_start() -> None:
    run_id = new_run_id(START)
    assert RUN_ID_RE.match(run_id)
    assert run_id.startswith("run_20260301_120000_")


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)))
def test_run_ids_sort_by_start_time(moment: datetime) -> None:
    earlier = new_run_id(moment.replace(tzinfo=UTC))
    later = new_run_id((moment + timedelta(seconds=1)).replace(tzinfo=UTC))
    assert RUN_ID_RE.match(earlier)
    assert earlier < later


def test_run_ids_started_in_the_same_second_differ() -> None:
    assert len({new_run_id(START) for _ in range(50)}) > 1


def test_episode_ids_are_one_based_and_sort_numerically() -> None:
    assert episode_id(1) == "ep_000001"
    ids = [episode_id(i) for i in range(1, 1200)]
    assert ids == sorted(ids)
    assert all(EPISODE_ID_RE.match(i) for i in ids)
    assert EPISODE_ID_RE.match(episode_id(1_000_000))
    for bad in (0, -1):
        with pytest.raises(ValueError, match="starts at 1"):
            episode_id(bad)


def test_run_layout_paths(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, "run_20260301_120000_abcd")
    run_dir = tmp_path / "runs" / "run_20260301_120000_abcd"
    assert layout.run_dir == run_dir
    assert layout.episodes_dir == run_dir / "episodes"
    assert layout.campaign_log == run_dir / "campaign.log"
    assert layout.summary_path == run_dir / "metrics_summary.json"
    assert layout.active_marker == run_dir / ".active"
    assert layout.episode_dir("ep_000003") == run_dir / "episodes" / "ep_000003"


def test_episode_dirs_skips_staging_hidden_and_plain_files(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, "run_20260301_120000_abcd")
    assert layout.episode_dirs() == []  # no episodes folder yet
    for name in ("ep_000002", "ep_000001", f".ep_000003{TEMP_MARKER}beef", ".hidden"):
        (layout.episodes_dir / name).mkdir(parents=True)
    (layout.episodes_dir / "notes.txt").write_text("not an episode")
    (layout.episodes_dir / f"ep_000004{TEMP_MARKER}x").mkdir()
    assert [p.name for p in layout.episode_dirs()] == ["ep_000001", "ep_000002"]


def make_runs(data_dir: Path, names: list[str]) -> None:
    for name in names:
        (data_dir / "runs" / name).mkdir(parents=True)


def test_list_runs_is_oldest_first_and_ignores_files_and_hidden_folders(tmp_path: Path) -> None:
    assert list_runs(tmp_path) == []
    make_runs(tmp_path, ["run_20260302_000000_aaaa", "run_20260301_000000_ffff", ".trash"])
    (tmp_path / "runs" / "README").write_text("x")
    assert [r.run_id for r in list_runs(tmp_path)] == [
        "run_20260301_000000_ffff",
        "run_20260302_000000_aaaa",
    ]
    assert all(r.data_dir == tmp_path for r in list_runs(tmp_path))


def test_resolve_run_latest_and_by_name(tmp_path: Path) -> None:
    make_runs(tmp_path, ["run_20260301_000000_ffff", "run_20260302_000000_aaaa", ".zz"])
    assert resolve_run(tmp_path, None).run_id == "run_20260302_000000_aaaa"
    assert resolve_run(tmp_path, "latest").run_id == "run_20260302_000000_aaaa"
    named = resolve_run(tmp_path, "run_20260301_000000_ffff")
    assert named.run_dir == tmp_path / "runs" / "run_20260301_000000_ffff"


@pytest.mark.parametrize(
    "name", ["run_20990101_000000_0000", "../runs", "a/b", ".zz", "..", "latest/x"]
)
def test_resolve_run_refuses_unknown_names_and_paths(tmp_path: Path, name: str) -> None:
    make_runs(tmp_path, ["run_20260301_000000_ffff", ".zz"])
    with pytest.raises(LookupError):
        resolve_run(tmp_path, name)


def test_resolve_latest_without_runs_is_a_lookup_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="no runs"):
        resolve_run(tmp_path, None)
