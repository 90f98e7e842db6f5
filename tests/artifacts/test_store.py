"""ArtifactStore: the one way an episode's files are written."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import LogLine, MetricsSummary, Proposal
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord, summarize
from clmmd.artifacts.writer import TEMP_MARKER, ArtifactExistsError
from tests.artifacts.test_validate import NOW, RUN_ID, make_failure, make_proposal, make_reward


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    s = ArtifactStore(RunLayout(tmp_path, RUN_ID), durable=False)
    s.open_run()
    return s


def test_open_run_creates_the_episodes_folder_and_is_idempotent(tmp_path: Path) -> None:
    store = ArtifactStore(RunLayout(tmp_path, RUN_ID))
    store.open_run()
    store.open_run()
    assert store.layout.episodes_dir.is_dir()
    assert store.layout.episode_dirs() == []


def test_create_episode_then_write_each_artifact_once(store: ArtifactStore) -> None:
    proposal = make_proposal(RUN_ID, "ep_000001")
    folder = store.create_episode("ep_000001", proposal)
    assert folder == store.layout.episode_dir("ep_000001")
    assert Proposal.model_validate_json((folder / "proposal.json").read_bytes()) == proposal

    assert not (store.layout.episode_dir("ep_000001") / "failure.json").exists()
    store.write("ep_000001", "failure.json", make_failure())
    assert (store.layout.episode_dir("ep_000001") / "failure.json").exists()
    with pytest.raises(ArtifactExistsError):
        store.write("ep_000001", "failure.json", make_failure("other"))
    assert b'"execute"' in (folder / "failure.json").read_bytes()


def test_a_second_episode_with_the_same_id_is_refused(store: ArtifactStore) -> None:
    store.create_episode("ep_000001", make_proposal(RUN_ID, "ep_000001", 1))
    with pytest.raises(ArtifactExistsError):
        store.create_episode("ep_000001", make_proposal(RUN_ID, "ep_000001", 2))
    proposal = Proposal.model_validate_json(
        (store.layout.episode_dir("ep_000001") / "proposal.json").read_bytes()
    )
    assert proposal.seed == 1001


def test_write_into_a_missing_episode_fails_without_creating_it(store: ArtifactStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.write("ep_000009", "reward.json", make_reward())
    assert store.layout.episode_dirs() == []


def test_append_log_writes_log_lines_in_order(store: ArtifactStore) -> None:
    store.create_episode("ep_000001", make_proposal(RUN_ID, "ep_000001"))
    store.append_log("ep_000001", "2026-03-01T12:00:00Z", "proposed", {"width": 200})
    store.append_log("ep_000001", "2026-03-01T12:00:01Z", "executed", {"pnl_usd": 1.5})
    raw = (store.layout.episode_dir("ep_000001") / "logs.jsonl").read_bytes()
    lines = [LogLine.model_validate(orjson.loads(x)) for x in raw.splitlines()]
    assert [(x.ts, x.event, x.payload) for x in lines] == [
        ("2026-03-01T12:00:00Z", "proposed", {"width": 200}),
        ("2026-03-01T12:00:01Z", "executed", {"pnl_usd": 1.5}),
    ]
    assert raw.endswith(b"\n")


def test_write_summary_replaces_and_concurrent_writers_leave_one_whole_summary(
    store: ArtifactStore,
) -> None:
    summaries = [
        summarize(RUN_ID, [EpisodeRecord("success", pnl_usd=float(i))] * i, NOW)
        for i in range(1, 41)
    ]

    def write_all(part: list[MetricsSummary]) -> None:
        for summary in part:
            store.write_summary(summary)

    threads = [threading.Thread(target=write_all, args=(summaries[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_disk = MetricsSummary.model_validate_json(store.layout.summary_path.read_bytes())
    assert on_disk in summaries
    assert not any(TEMP_MARKER in p.name for p in store.layout.run_dir.iterdir())


def test_durable_store_fsyncs_and_a_non_durable_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fsync(*_: Any) -> None:
        raise OSError(errno.EIO, "fsync called")

    monkeypatch.setattr(os, "fsync", no_fsync)
    fast = ArtifactStore(RunLayout(tmp_path, RUN_ID), durable=False)
    fast.open_run()
    fast.create_episode("ep_000001", make_proposal(RUN_ID, "ep_000001"))
    fast.write("ep_000001", "reward.json", make_reward())
    fast.write_summary(summarize(RUN_ID, [], NOW))

    durable = ArtifactStore(RunLayout(tmp_path, "run_20260301_120000_0000"), durable=True)
    durable.open_run()
    with pytest.raises(OSError, match="fsync called"):
        durable.create_episode("ep_000001", make_proposal("run_20260301_120000_0000", "ep_000001"))
    assert durable.layout.episode_dirs() == []
