"""metrics_summary.json: folding records, and reading them back from folders."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.summary import EpisodeRecord, record_from_folder, summarize, summarize_folders
from tests.artifacts.test_validate import NOW, RUN_ID, Outcome, build_run, record_for


def test_summarize_counts_sums_and_ratios() -> None:
    records = [
        EpisodeRecord("success", 10.0, 2.0, 0.5, 1.0, True, 80.0),
        EpisodeRecord("success", -4.0, 1.0, 0.5, 3.0, True, 70.0),
        EpisodeRecord("failed", fresh_pct=None),
        EpisodeRecord("skipped", risk_scalar_applied=False, fresh_pct=40.0),
    ]
    s = summarize(RUN_ID, records, NOW)
    assert s.run_id == RUN_ID
    assert (s.episodes, s.successful, s.failed, s.skipped) == (4, 2, 1, 1)
    assert s.total_pnl_usd == 6.0
    assert s.total_fees_usd == 3.0
    assert s.total_gas_usd == 1.0
    assert s.total_il_usd == 4.0
    assert s.risk_scalar_applied == "2/4"
    assert s.mean_fresh_pct == round((80 + 70 + 40) / 3, 2)  # the None is left out
    assert s.updated_at == "2026-03-01T12:00:00Z"


def test_summarize_of_nothing() -> None:
    s = summarize(RUN_ID, [], NOW)
    assert (s.episodes, s.successful, s.failed, s.skipped) == (0, 0, 0, 0)
    assert s.total_pnl_usd == 0.0
    assert s.risk_scalar_applied == "0/0"
    assert s.mean_fresh_pct is None


def test_updated_at_is_utc_whatever_the_zone_of_now() -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    assert summarize(RUN_ID, [], paris).updated_at == "2026-03-01T12:00:00Z"


def test_summarize_accepts_a_generator_and_reads_it_once() -> None:
    records = (EpisodeRecord("success", pnl_usd=1.0) for _ in range(3))
    s = summarize(RUN_ID, records, NOW)
    assert s.episodes == 3
    assert s.total_pnl_usd == 3.0


money = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
records_strategy = st.lists(
    st.builds(
        EpisodeRecord,
        status=st.sampled_from(["success", "failed", "skipped"]),
        pnl_usd=money,
        fees_usd=money,
        gas_cost_usd=money,
        il_usd=money,
        risk_scalar_applied=st.booleans(),
        fresh_pct=st.none() | st.floats(min_value=0, max_value=100),
    ),
    max_size=30,
)


@given(records_strategy)
def test_summarize_properties(records: list[EpisodeRecord]) -> None:
    s = summarize(RUN_ID, records, NOW)
    assert s.successful + s.failed + s.skipped == s.episodes == len(records)
    assert math.isclose(s.total_pnl_usd, sum(r.pnl_usd for r in records), abs_tol=1e-5)
    assert math.isclose(s.total_il_usd, sum(r.il_usd for r in records), abs_tol=1e-5)
    applied, total = (int(x) for x in s.risk_scalar_applied.split("/"))
    assert total == len(records)
    assert applied == sum(r.risk_scalar_applied for r in records)
    fresh = [r.fresh_pct for r in records if r.fresh_pct is not None]
    if fresh:
        assert s.mean_fresh_pct is not None
        assert min(fresh) - 0.01 <= s.mean_fresh_pct <= max(fresh) + 0.01
    else:
        assert s.mean_fresh_pct is None


def test_record_from_folder_reads_result_failure_and_metadata(tmp_path: Path) -> None:
    layout = build_run(tmp_path, ("success", "failure", "skipped"))
    assert record_from_folder(layout.episode_dir("ep_000001")) == record_for(1, "success")
    assert record_from_folder(layout.episode_dir("ep_000002")) == record_for(2, "failure")
    assert record_from_folder(layout.episode_dir("ep_000003")) == record_for(3, "skipped")


def test_record_from_folder_without_an_outcome_is_none(tmp_path: Path) -> None:
    folder = tmp_path / "ep_000001"
    folder.mkdir()
    (folder / "proposal.json").write_text("{}")
    assert record_from_folder(folder) is None


def test_record_from_folder_tolerates_odd_values(tmp_path: Path) -> None:
    folder = tmp_path / "ep_000001"
    folder.mkdir()
    (folder / "result.json").write_bytes(
        orjson.dumps({"status": "weird", "pnl_usd": "12", "risk_scalar_applied": None})
    )
    (folder / "metadata.json").write_bytes(orjson.dumps({"extra": {"intel_hygiene": []}}))
    record = record_from_folder(folder)
    assert record == EpisodeRecord(status="failed")


def test_summarize_folders_agrees_with_the_records_it_was_built_from(tmp_path: Path) -> None:
    outcomes: tuple[Outcome, ...] = (
        "success",
        "failure",
        "skipped",
        "failed",
        "success",
        "failure",
    )
    layout = build_run(tmp_path, outcomes)
    records = [record_for(i, o) for i, o in enumerate(outcomes, start=1)]
    assert summarize_folders(layout, NOW) == summarize(RUN_ID, records, NOW)


def test_summarize_folders_skips_unfinished_episodes_and_staging(tmp_path: Path) -> None:
    layout = build_run(tmp_path, ("success",))
    (layout.episode_dir("ep_000002")).mkdir()
    (layout.episode_dir("ep_000002") / "proposal.json").write_text("{}")
    (layout.episodes_dir / ".ep_000003.tmp-beef").mkdir()
    (layout.episodes_dir / ".ep_000003.tmp-beef" / "result.json").write_bytes(
        orjson.dumps({"status": "success", "pnl_usd": 99.0})
    )
    summary = summarize_folders(layout, NOW)
    assert summary.episodes == 1
    assert summary.total_pnl_usd == record_for(1, "success").pnl_usd


def test_summarize_folders_of_a_run_without_episodes(tmp_path: Path) -> None:
    s = summarize_folders(RunLayout(tmp_path, RUN_ID), NOW + timedelta(hours=1))
    assert s.episodes == 0
    assert s.updated_at == "2026-03-01T13:00:00Z"
    assert datetime.fromisoformat(s.updated_at).tzinfo == UTC
