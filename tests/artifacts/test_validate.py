"""The validator: one test per invariant, each violation naming its file and its problem.

The builders at the top make real run folders through ``ArtifactStore`` and the models; the
recovery and summary tests import them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest

from clmmd.artifacts.layout import RunLayout, episode_id
from clmmd.artifacts.models import (
    EpisodeFailure,
    EpisodeMetadata,
    EpisodeResult,
    IntelHygiene,
    MetadataExtra,
    MetricsSummary,
    Proposal,
    RangeAction,
    Reward,
    RewardComponents,
    RunInfo,
    Simulation,
    Timings,
)
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord, summarize, summarize_folders
from clmmd.artifacts.validate import Violation, validate_episode, validate_run
from clmmd.artifacts.writer import TEMP_MARKER, replace_json

RUN_ID = "run_20260301_120000_abcd"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TS = "2026-03-01T12:00:00Z"
Outcome = Literal["success", "failed", "skipped", "failure"]


def make_proposal(run_id: str, ep: str, index: int = 1) -> Proposal:
    return Proposal(
        run_id=run_id,
        episode_id=ep,
        proposed=True,
        pool_address="0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
        pair="WETH-USDC",
        fee_pips=500,
        tick_lower=-1000,
        tick_upper=1000,
        size_usd=1000.0,
        action=RangeAction(width_ticks=2000, fee_pips=500),
        regime_key="gas=low|vol=mid|flow=clean",
        risk_scalar=0.85,
        agent_version=f"clmmd-agent/0.1+s{index}",
        seed=1000 + index,
    )


def make_metadata(run_id: str, ep: str, fresh_pct: float | None) -> EpisodeMetadata:
    hygiene = (
        None
        if fresh_pct is None
        else IntelHygiene(
            total_queries=10, fresh=8, stale=1, missing_or_too_old=1, fresh_pct=fresh_pct
        )
    )
    return EpisodeMetadata(
        run_id=run_id,
        episode_id=ep,
        agent_version="clmmd-agent/0.1+s0",
        config_hash="cafebabe",
        exec_mode="mock",
        timestamp=TS,
        regime_key="gas=low|vol=mid|flow=clean",
        seed=7,
        learning_update_applied=False,
        learning_update_reason="gate: mock episode and LEARN_FROM_MOCK=false",
        extra=MetadataExtra(intel_hygiene=hygiene),
    )


def make_result(
    index: int, status: Literal["success", "failed", "skipped"] = "success"
) -> EpisodeResult:
    return EpisodeResult(
        status=status,
        simulation=Simulation(source="mock", steps=24),
        pnl_usd=1.25 * index - 2.0,
        fees_usd=0.5 * index,
        gas_cost_usd=0.75,
        il_usd=0.1 * index,
        time_in_range_pct=80.0,
        risk_scalar_applied=0.85,
        size_usd_applied=850.0,
        timings_ms={"execute": 1.5},
    )


def make_reward() -> Reward:
    return Reward(
        total=0.1,
        components=RewardComponents(pnl=0.05, fees=0.1, gas_penalty=-0.03, range_penalty=-0.02),
    )


def make_failure(stage: str = "execute") -> EpisodeFailure:
    return EpisodeFailure(
        stage=stage, error_type="RuntimeError", error_message="boom", timestamp=TS
    )


def make_run_info(run_id: str) -> RunInfo:
    return RunInfo(
        run_id=run_id,
        started_at=TS,
        kind="campaign",
        config_hash="cafebabe",
        exec_mode="mock",
        seed=42,
        agent_version="clmmd-agent/0.1+s0",
        pid=1,
        config={"episodes": 3},
    )


def record_for(index: int, outcome: Outcome) -> EpisodeRecord:
    fresh = 60.0 + 5 * index
    if outcome == "failure":
        return EpisodeRecord(status="failed", fresh_pct=fresh)
    r = make_result(index, outcome)
    return EpisodeRecord(
        status=outcome,
        pnl_usd=r.pnl_usd,
        fees_usd=r.fees_usd,
        gas_cost_usd=r.gas_cost_usd,
        il_usd=r.il_usd,
        risk_scalar_applied=outcome != "skipped",  # a skipped episode deployed nothing
        fresh_pct=fresh,
    )


def write_episode(store: ArtifactStore, index: int, outcome: Outcome) -> str:
    """One complete episode folder, written in the order the runner writes it."""
    run_id = store.layout.run_id
    ep = episode_id(index)
    store.create_episode(ep, make_proposal(run_id, ep, index))
    store.append_log(ep, TS, "proposed", {"index": index})
    if outcome == "failure":
        store.write(ep, "failure.json", make_failure())
        store.append_log(ep, TS, "failed", {"stage": "execute"})
    else:
        store.append_log(ep, TS, "executed", {"status": outcome})
        store.write(ep, "result.json", make_result(index, outcome))
        store.write(ep, "reward.json", make_reward())
    store.write(
        ep,
        "timings.json",
        Timings(stages_ms={"execute": 1.5}, total_ms=2.0, started_at=TS, ended_at=TS),
    )
    store.write(ep, "metadata.json", make_metadata(run_id, ep, 60.0 + 5 * index))
    return ep


def build_run(
    data_dir: Path,
    outcomes: Sequence[Outcome] = ("success", "failure", "success"),
    *,
    run_id: str = RUN_ID,
    summary: bool = True,
) -> RunLayout:
    """A finished run: run.json, complete episodes, and the summary the campaign would write."""
    layout = RunLayout(data_dir, run_id)
    store = ArtifactStore(layout, durable=False)
    store.open_run()
    (layout.run_dir / "run.json").write_bytes(orjson.dumps(make_run_info(run_id).model_dump()))
    for index, outcome in enumerate(outcomes, start=1):
        write_episode(store, index, outcome)
    if summary:
        records = [record_for(i, o) for i, o in enumerate(outcomes, start=1)]
        store.write_summary(summarize(run_id, records, NOW))
    return layout


def resummarize(layout: RunLayout) -> None:
    """Make the summary agree with the folders again, to isolate an episode-level violation."""
    replace_json(layout.summary_path, summarize_folders(layout, NOW), durable=False)


def overwrite(path: Path, data: bytes) -> None:
    """Corrupt an artifact in place (what a bug or a bad disk could do; the writer never would)."""
    path.chmod(0o644)
    with open(path, "wb") as f:
        f.write(data)


def only(violations: list[Violation]) -> Violation:
    assert len(violations) == 1, [str(v) for v in violations]
    return violations[0]


# --- a clean run -----------------------------------------------------------------------------


def test_a_clean_run_has_no_violations(tmp_path: Path) -> None:
    layout = build_run(tmp_path, ("success", "failure", "skipped", "failed", "success"))
    assert validate_run(layout) == []


def test_an_empty_run_has_no_violations_and_a_missing_run_has_one(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN_ID)
    v = only(validate_run(layout))
    assert v.path == layout.run_dir
    assert "does not exist" in v.message
    ArtifactStore(layout).open_run()
    assert validate_run(layout) == []


def test_violation_str_names_the_file_and_the_problem(tmp_path: Path) -> None:
    v = Violation(tmp_path / "x.json", "empty file")
    assert str(v) == f"{tmp_path / 'x.json'}: empty file"


# --- required files --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["proposal.json", "metadata.json"])
def test_missing_required_file(tmp_path: Path, name: str) -> None:
    layout = build_run(tmp_path)
    ep_dir = layout.episode_dir("ep_000001")
    (ep_dir / name).unlink()
    resummarize(layout)
    v = only(validate_run(layout))
    assert v.path == ep_dir
    assert v.message == f"missing {name}"


def test_both_result_and_failure(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    ep_dir = layout.episode_dir("ep_000001")
    ArtifactStore(layout).write("ep_000001", "failure.json", make_failure())
    v = only(validate_run(layout))
    assert v.path == ep_dir
    assert "both result.json and failure.json" in v.message


def test_neither_result_nor_failure(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    ep_dir = layout.episode_dir("ep_000002")
    (ep_dir / "failure.json").unlink()
    resummarize(layout)
    v = only(validate_run(layout))
    assert v.path == ep_dir
    assert "neither result.json nor failure.json" in v.message


def test_result_without_reward(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    ep_dir = layout.episode_dir("ep_000003")
    (ep_dir / "reward.json").unlink()
    v = only(validate_run(layout))
    assert v.path == ep_dir
    assert v.message == "result.json without reward.json"


# --- file contents ---------------------------------------------------------------------------

CONTENT_CASES = [
    ("ep_000001", "proposal.json"),
    ("ep_000001", "metadata.json"),
    ("ep_000001", "result.json"),
    ("ep_000001", "reward.json"),
    ("ep_000001", "timings.json"),
    ("ep_000002", "failure.json"),
]


@pytest.mark.parametrize(("ep", "name"), CONTENT_CASES)
@pytest.mark.parametrize("data", [b"", b"  \n"])
def test_empty_json(tmp_path: Path, ep: str, name: str, data: bytes) -> None:
    layout = build_run(tmp_path)
    path = layout.episode_dir(ep) / name
    overwrite(path, data)
    resummarize(layout)
    v = only(validate_run(layout))
    assert v.path == path
    assert v.message == "empty file"


@pytest.mark.parametrize(("ep", "name"), CONTENT_CASES)
def test_invalid_json(tmp_path: Path, ep: str, name: str) -> None:
    layout = build_run(tmp_path)
    path = layout.episode_dir(ep) / name
    overwrite(path, b'{"run_id": "run_20260301_120000_abcd", ')  # cut short
    resummarize(layout)
    v = only(validate_run(layout))
    assert v.path == path
    assert v.message.startswith("invalid JSON")


@pytest.mark.parametrize(
    ("ep", "name", "change", "expect"),
    [
        ("ep_000001", "proposal.json", {"proposed": "maybe"}, "Proposal: proposed"),
        ("ep_000001", "metadata.json", {"exec_mode": "paper"}, "EpisodeMetadata: exec_mode"),
        ("ep_000001", "metadata.json", {"connector_execution": "x"}, "connector_execution"),
        ("ep_000001", "result.json", {"status": "done"}, "EpisodeResult: status"),
        ("ep_000001", "result.json", {"simulation": {"source": "paper"}}, "simulation.source"),
        ("ep_000001", "reward.json", {"surprise": 1}, "Reward: surprise"),
        ("ep_000001", "timings.json", {"total_ms": "slow"}, "Timings: total_ms"),
        ("ep_000002", "failure.json", {"stage": None}, "EpisodeFailure: stage"),
    ],
)
def test_schema_mismatch(
    tmp_path: Path, ep: str, name: str, change: dict[str, Any], expect: str
) -> None:
    layout = build_run(tmp_path)
    path = layout.episode_dir(ep) / name
    overwrite(path, orjson.dumps({**orjson.loads(path.read_bytes()), **change}))
    resummarize(layout)
    v = only(validate_run(layout))
    assert v.path == path
    assert v.message.startswith("does not match")
    assert expect in v.message


def test_schema_mismatch_for_a_missing_field(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    path = layout.episode_dir("ep_000001") / "result.json"
    doc = orjson.loads(path.read_bytes())
    del doc["pnl_usd"]
    overwrite(path, orjson.dumps(doc))
    v = validate_episode(layout.episode_dir("ep_000001"), RUN_ID)
    assert [x.path for x in v] == [path]
    assert "pnl_usd" in v[0].message
    assert "Field required" in v[0].message


@pytest.mark.parametrize("name", ["proposal.json", "metadata.json"])
def test_run_id_mismatch(tmp_path: Path, name: str) -> None:
    layout = build_run(tmp_path)
    path = layout.episode_dir("ep_000001") / name
    overwrite(path, orjson.dumps({**orjson.loads(path.read_bytes()), "run_id": "run_other"}))
    v = only(validate_run(layout))
    assert v.path == path
    assert "run_id 'run_other'" in v.message
    assert RUN_ID in v.message


@pytest.mark.parametrize("name", ["proposal.json", "metadata.json"])
def test_episode_id_mismatch(tmp_path: Path, name: str) -> None:
    layout = build_run(tmp_path)
    path = layout.episode_dir("ep_000001") / name
    overwrite(path, orjson.dumps({**orjson.loads(path.read_bytes()), "episode_id": "ep_000009"}))
    v = only(validate_run(layout))
    assert v.path == path
    assert "episode_id 'ep_000009'" in v.message
    assert "'ep_000001'" in v.message


# --- crash residue ---------------------------------------------------------------------------


def test_leftover_temp_file_in_an_episode(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    temp = layout.episode_dir("ep_000002") / f".result.json{TEMP_MARKER}123-abcd"
    temp.write_bytes(b"{")
    v = only(validate_run(layout))
    assert v.path == temp
    assert "leftover temporary file" in v.message


def test_leftover_staging_folder_is_reported_and_not_taken_for_an_episode(
    tmp_path: Path,
) -> None:
    layout = build_run(tmp_path)
    staging = layout.episodes_dir / f".ep_000004{TEMP_MARKER}beef"
    staging.mkdir()
    (staging / "proposal.json").write_bytes(
        orjson.dumps(make_proposal(RUN_ID, "ep_000004").model_dump())
    )
    v = only(validate_run(layout))  # not also "missing metadata.json" for ep_000004
    assert v.path == staging
    assert "leftover staging folder" in v.message


def test_leftover_temp_file_in_the_run_folder(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    temp = layout.run_dir / f".metrics_summary.json{TEMP_MARKER}99-0000"
    temp.write_bytes(b'{"run_id"')
    v = only(validate_run(layout))
    assert v.path == temp
    assert "leftover temporary file" in v.message


# --- logs.jsonl ------------------------------------------------------------------------------


def test_partial_last_line_in_logs(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    log = layout.episode_dir("ep_000001") / "logs.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"ts": "2026-03-01T12:00:01Z", "ev')
    violations = validate_run(layout)
    assert {v.path for v in violations} == {log}
    messages = [v.message for v in violations]
    assert "last line is not terminated (partial write)" in messages
    assert any(m.startswith("line 3 is not a log line") for m in messages)


@pytest.mark.parametrize(
    "line",
    [b"not json", b'{"ts": "t", "payload": {}}', b'{"ts": "t", "event": "e", "x": 1}', b"[]"],
)
def test_a_malformed_log_line_is_reported_with_its_number(tmp_path: Path, line: bytes) -> None:
    layout = build_run(tmp_path)
    log = layout.episode_dir("ep_000002") / "logs.jsonl"
    with open(log, "ab") as f:
        f.write(line + b"\n")
    v = only(validate_run(layout))
    assert v.path == log
    assert v.message.startswith("line 3 is not a log line")


# --- metrics_summary.json --------------------------------------------------------------------


def test_missing_summary_is_a_violation_unless_the_run_is_still_being_written(
    tmp_path: Path,
) -> None:
    layout = build_run(tmp_path, summary=False)
    v = only(validate_run(layout))
    assert v.path == layout.summary_path
    assert "missing" in v.message
    layout.active_marker.write_text(str(os.getpid()))
    assert validate_run(layout) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("run_id", "run_20990101_000000_ffff"),
        ("episodes", 4),
        ("successful", 1),
        ("failed", 0),
        ("skipped", 1),
        ("risk_scalar_applied", "3/3"),
        ("total_pnl_usd", 100.0),
        ("total_fees_usd", 0.0),
        ("total_gas_usd", 0.75),
        ("total_il_usd", -1.0),
        ("mean_fresh_pct", 50.0),
        ("mean_fresh_pct", None),
    ],
)
def test_summary_inconsistent_with_folders(tmp_path: Path, field: str, value: Any) -> None:
    layout = build_run(tmp_path)
    summary = MetricsSummary.model_validate_json(layout.summary_path.read_bytes())
    replace_json(layout.summary_path, summary.model_copy(update={field: value}), durable=False)
    v = only(validate_run(layout))
    assert v.path == layout.summary_path
    assert v.message.startswith(f"{field} is {value} but the folders show")


def test_summary_sums_may_differ_by_rounding_only(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    summary = MetricsSummary.model_validate_json(layout.summary_path.read_bytes())
    nudged = summary.model_copy(
        update={
            "total_pnl_usd": summary.total_pnl_usd + 1e-7,
            "total_gas_usd": summary.total_gas_usd + 1e-3,
        }
    )
    replace_json(layout.summary_path, nudged, durable=False)
    v = only(validate_run(layout))
    assert v.message.startswith("total_gas_usd")


def test_unreadable_summary_is_reported(tmp_path: Path) -> None:
    layout = build_run(tmp_path)
    overwrite(layout.summary_path, b"")
    v = only(validate_run(layout))
    assert v.path == layout.summary_path
    assert v.message == "empty file"


def test_unfinished_episodes_of_a_live_writer_are_not_violations(tmp_path: Path) -> None:
    import subprocess

    from clmmd.artifacts.layout import episode_id as make_episode_id

    layout = build_run(tmp_path, ("success",))
    store = ArtifactStore(layout, durable=False)
    running = make_episode_id(2)
    store.create_episode(running, make_proposal(layout.run_id, running, 2))
    (layout.episode_dir(running) / ".result.json.tmp-1-abcd").write_bytes(b"{")
    writer = subprocess.Popen(["sleep", "30"])
    try:
        layout.active_marker.write_text(str(writer.pid))
        assert validate_run(layout) == []
    finally:
        writer.kill()
        writer.wait()
    # Once the writer is gone the same folder is an interrupted episode: violations.
    messages = [v.message for v in validate_run(layout)]
    assert "missing metadata.json" in messages
    assert any("neither result.json nor failure.json" in m for m in messages)
