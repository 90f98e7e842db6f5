"""Recovery: a restart completes what a dead process left, and leaves live runs alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import (
    EpisodeFailure,
    EpisodeMetadata,
    MetricsSummary,
    Proposal,
    Timings,
)
from clmmd.artifacts.recovery import recover_all, recover_run, writer_alive
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import summarize_folders
from clmmd.artifacts.validate import validate_run
from clmmd.artifacts.writer import TEMP_MARKER
from tests.artifacts.test_validate import (
    NOW,
    RUN_ID,
    build_run,
    make_failure,
    make_proposal,
    make_result,
    make_reward,
)

OTHER_RUN = "run_20260302_080000_beef"


@pytest.fixture
def live_process() -> Iterator[int]:
    """A process of our own that stays alive until the test ends (waiting on its stdin)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def interrupted_run(data_dir: Path, run_id: str = RUN_ID) -> RunLayout:
    """Two finished episodes, then the states a crash can leave, plus crash residue.

    ep_000003: only proposal.json (died during execution);
    ep_000004: result + reward but no metadata (died just before the last write);
    ep_000005: failure but no metadata.
    """
    layout = build_run(data_dir, ("success", "failure"), run_id=run_id)
    store = ArtifactStore(layout, durable=False)
    store.create_episode("ep_000003", make_proposal(run_id, "ep_000003", 3))
    store.append_log("ep_000003", "2026-03-01T12:00:00Z", "proposed", {})
    store.create_episode("ep_000004", make_proposal(run_id, "ep_000004", 4))
    store.write("ep_000004", "result.json", make_result(4))
    store.write("ep_000004", "reward.json", make_reward())
    store.create_episode("ep_000005", make_proposal(run_id, "ep_000005", 5))
    store.write("ep_000005", "failure.json", make_failure("propose"))
    (layout.episodes_dir / f".ep_000006{TEMP_MARKER}dead").mkdir()
    (layout.episodes_dir / f".ep_000006{TEMP_MARKER}dead" / "proposal.json").write_text("{}")
    (layout.episode_dir("ep_000003") / f".result.json{TEMP_MARKER}1-ab").write_text("{")
    (layout.run_dir / f".metrics_summary.json{TEMP_MARKER}1-cd").write_text("{")
    return layout


def load_metadata(layout: RunLayout, ep: str) -> EpisodeMetadata:
    return EpisodeMetadata.model_validate_json(
        (layout.episode_dir(ep) / "metadata.json").read_bytes()
    )


def test_recovery_completes_every_interrupted_episode_and_the_run_then_validates(
    tmp_path: Path, dead_pid: int
) -> None:
    layout = interrupted_run(tmp_path)
    layout.active_marker.write_text(str(dead_pid))
    assert validate_run(layout) != []
    result_before = (layout.episode_dir("ep_000004") / "result.json").read_bytes()

    report = recover_run(layout, NOW)

    assert report.runs_checked == 1
    assert report.runs_skipped_active == []
    assert report.episodes_completed == [
        f"{RUN_ID}/ep_000003",
        f"{RUN_ID}/ep_000004",
        f"{RUN_ID}/ep_000005",
    ]
    assert len(report.residue_removed) == 3
    assert all(TEMP_MARKER in Path(p).name for p in report.residue_removed)
    assert not any(TEMP_MARKER in p.name for p in layout.run_dir.rglob("*"))
    assert not layout.active_marker.exists()
    assert validate_run(layout) == []

    # ep_000003 had only its proposal: now it has failed as interrupted.
    failure = EpisodeFailure.model_validate_json(
        (layout.episode_dir("ep_000003") / "failure.json").read_bytes()
    )
    assert failure.stage == "interrupted"
    assert failure.timestamp == "2026-03-01T12:00:00Z"
    assert not (layout.episode_dir("ep_000003") / "result.json").exists()
    # ep_000004 had its outcome: metadata and timings were added, the result is untouched.
    assert not (layout.episode_dir("ep_000004") / "failure.json").exists()
    assert (layout.episode_dir("ep_000004") / "result.json").read_bytes() == result_before
    timings = Timings.model_validate_json(
        (layout.episode_dir("ep_000004") / "timings.json").read_bytes()
    )
    assert timings.stages_ms == make_result(4).timings_ms
    assert timings.started_at <= timings.ended_at
    # ep_000003 has no result: no timings are invented for it.
    assert not (layout.episode_dir("ep_000003") / "timings.json").exists()
    # ep_000005 had a failure from the propose stage: kept, not replaced.
    kept = EpisodeFailure.model_validate_json(
        (layout.episode_dir("ep_000005") / "failure.json").read_bytes()
    )
    assert kept.stage == "propose"


def test_recovered_metadata_comes_from_run_json_and_proposal_json(tmp_path: Path) -> None:
    layout = interrupted_run(tmp_path)
    recover_run(layout, NOW)
    for index, ep in [(3, "ep_000003"), (4, "ep_000004"), (5, "ep_000005")]:
        meta = load_metadata(layout, ep)
        proposal = make_proposal(RUN_ID, ep, index)
        assert meta.run_id == RUN_ID
        assert meta.episode_id == ep
        assert meta.agent_version == proposal.agent_version
        assert meta.seed == proposal.seed
        assert meta.regime_key == proposal.regime_key
        assert meta.config_hash == "cafebabe"  # from run.json
        assert meta.exec_mode == "mock"
        assert meta.timestamp == "2026-03-01T12:00:00Z"
        assert meta.learning_update_applied is False
        assert "interrupted" in meta.learning_update_reason


def test_recovered_metadata_falls_back_to_run_json_for_a_placeholder_proposal(
    tmp_path: Path,
) -> None:
    layout = build_run(tmp_path, ("success",))
    store = ArtifactStore(layout, durable=False)
    store.create_episode(
        "ep_000002",
        Proposal(run_id=RUN_ID, episode_id="ep_000002", proposed=False, reason="no proposal"),
    )
    recover_run(layout, NOW)
    meta = load_metadata(layout, "ep_000002")
    assert meta.seed == 42  # run.json's seed
    assert meta.agent_version == "clmmd-agent/0.1+s0"  # run.json's agent version
    assert meta.regime_key is None
    assert validate_run(layout) == []


def test_recovery_without_run_json_uses_safe_defaults(tmp_path: Path) -> None:
    layout = interrupted_run(tmp_path)
    (layout.run_dir / "run.json").unlink()
    recover_run(layout, NOW)
    meta = load_metadata(layout, "ep_000003")
    assert meta.config_hash == "unknown"
    assert meta.seed == 1003
    assert validate_run(layout) == []


def test_recovery_survives_a_proposal_that_is_not_an_object(tmp_path: Path) -> None:
    layout = build_run(tmp_path, ("success",))
    folder = layout.episode_dir("ep_000002")
    folder.mkdir()
    (folder / "proposal.json").write_bytes(b"[1, 2]")
    report = recover_run(layout, NOW)
    assert report.episodes_completed == [f"{RUN_ID}/ep_000002"]
    assert load_metadata(layout, "ep_000002").seed == 42


def test_summary_after_recovery_matches_the_folders(tmp_path: Path) -> None:
    layout = interrupted_run(tmp_path)
    recover_run(layout, NOW)
    summary = MetricsSummary.model_validate_json(layout.summary_path.read_bytes())
    assert summary == summarize_folders(layout, NOW)
    assert (summary.episodes, summary.successful, summary.failed) == (5, 2, 3)
    assert summary.risk_scalar_applied == "2/5"


def test_recovery_is_idempotent(tmp_path: Path) -> None:
    layout = interrupted_run(tmp_path)
    recover_run(layout, NOW)
    snapshot = {p: p.read_bytes() for p in layout.episodes_dir.rglob("*.json")}
    again = recover_run(layout, NOW)
    assert again.episodes_completed == []
    assert again.residue_removed == []
    assert {p: p.read_bytes() for p in layout.episodes_dir.rglob("*.json")} == snapshot
    assert validate_run(layout) == []


def test_a_run_whose_writer_is_alive_is_left_alone(tmp_path: Path, live_process: int) -> None:
    layout = interrupted_run(tmp_path)
    layout.active_marker.write_text(f"{live_process}\n")
    before = sorted(str(p) for p in layout.run_dir.rglob("*"))
    summary_before = layout.summary_path.read_bytes()

    report = recover_run(layout, NOW)

    assert report.runs_skipped_active == [RUN_ID]
    assert report.episodes_completed == []
    assert report.residue_removed == []
    assert sorted(str(p) for p in layout.run_dir.rglob("*")) == before
    assert layout.summary_path.read_bytes() == summary_before
    assert layout.active_marker.exists()


@pytest.mark.parametrize("marker", ["", "not a pid", "0", "-1", "OWN"])
def test_markers_that_name_no_other_live_process_do_not_block_recovery(
    tmp_path: Path, marker: str
) -> None:
    """Our own pid is a stale marker from a previous process (pid reuse); 0 and negative
    numbers address process groups in kill(2) and must not count as a live writer."""
    layout = interrupted_run(tmp_path)
    layout.active_marker.write_text(str(os.getpid()) if marker == "OWN" else marker)
    assert not writer_alive(layout)
    report = recover_run(layout, NOW)
    assert report.runs_skipped_active == []
    assert len(report.episodes_completed) == 3
    assert not layout.active_marker.exists()


def test_writer_alive_sees_a_live_process_and_not_a_dead_one(
    tmp_path: Path, live_process: int, dead_pid: int
) -> None:
    layout = RunLayout(tmp_path, RUN_ID)
    layout.run_dir.mkdir(parents=True)
    assert not writer_alive(layout)  # no marker
    layout.active_marker.write_text(str(live_process))
    assert writer_alive(layout)
    layout.active_marker.write_text(str(dead_pid))
    assert not writer_alive(layout)


def test_recover_all_recovers_dead_runs_and_skips_live_ones(
    tmp_path: Path, live_process: int
) -> None:
    dead = interrupted_run(tmp_path)
    live = interrupted_run(tmp_path, OTHER_RUN)
    live.active_marker.write_text(str(live_process))
    clean = build_run(tmp_path, ("success",), run_id="run_20260303_000000_0000")

    report = recover_all(tmp_path, NOW)

    assert report.runs_checked == 3
    assert report.runs_skipped_active == [OTHER_RUN]
    assert report.episodes_completed == [f"{RUN_ID}/ep_00000{i}" for i in (3, 4, 5)]
    assert len(report.residue_removed) == 3
    assert validate_run(dead) == []
    assert validate_run(clean) == []
    assert not (live.episode_dir("ep_000003") / "failure.json").exists()


def test_recover_all_on_an_empty_data_dir(tmp_path: Path) -> None:
    report = recover_all(tmp_path, NOW)
    assert report.runs_checked == 0
    assert report.episodes_completed == []
    assert report.runs_skipped_active == []
