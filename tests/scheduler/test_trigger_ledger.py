"""The trigger ledger: acceptance with the position in one transaction, owed episodes,
claims settled after a crash, pruning."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.scheduler.trigger_ledger import TriggerLedger, ledger_path, read_position
from clmmd.scheduler.trigger_lines import EpisodesTrigger, RefreshTrigger
from clmmd.scheduler.trigger_position import FileId, Position

POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
HERE = FileId(1, 2)


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock) -> TriggerLedger:
    opened = TriggerLedger.open(tmp_path, clock.now(), durable=False)
    yield opened  # type: ignore[misc]
    opened.close()


def test_acceptance_moves_the_position_and_deduplicates_ids(
    ledger: TriggerLedger, tmp_path: Path, clock: FakeClock
) -> None:
    batch = [
        EpisodesTrigger("a", 2, line_no=1),
        RefreshTrigger(None, None, "r", POOL, line_no=2),
        EpisodesTrigger("a", 5, line_no=3),
    ]
    accepted = ledger.accept(batch, Position(HERE, 300, 3), clock.now())
    assert accepted[0] == batch[0]
    assert accepted[1] is not None and str(accepted[1].id).startswith("auto-")
    assert accepted[2] is None  # "a" again: a duplicate
    assert read_position(tmp_path) == Position(HERE, 300, 3)
    assert [p.remaining for p in ledger.pending_episodes()] == [2]
    assert [r.id for r in ledger.pending_refreshes()] == [accepted[1].id]


def test_claims_settle_what_a_trigger_owes(ledger: TriggerLedger, clock: FakeClock) -> None:
    ledger.accept([EpisodesTrigger("t", 3)], Position(HERE, 10, 1), clock.now())
    assert ledger.claim_episode("t", "run_a", "ep_000001", clock.now())
    assert ledger.claim_episode("t", "run_a", "ep_000002", clock.now())
    ledger.end_episode("run_a", "ep_000001", "finished")
    ledger.release_episode("run_a", "ep_000002")  # no folder (full disk): owed again
    assert [p.remaining for p in ledger.pending_episodes()] == [2]
    assert ledger.claim_episode("t", "run_a", "ep_000003", clock.now())
    assert ledger.claim_episode("t", "run_a", "ep_000004", clock.now())
    assert not ledger.claim_episode("t", "run_a", "ep_000005", clock.now())  # none left
    assert ledger.pending_episodes() == []


def test_reconcile_after_a_crash(ledger: TriggerLedger, clock: FakeClock) -> None:
    ledger.accept([EpisodesTrigger("t", 2)], Position(HERE, 10, 1), clock.now())
    ledger.claim_episode("t", "run_dead", "ep_000001", clock.now())  # folder made, then kill
    ledger.claim_episode("t", "run_dead", "ep_000002", clock.now())  # killed before the folder
    kept, released = ledger.reconcile(lambda run, ep: ep == "ep_000001")
    assert (kept, released) == (1, 1)
    assert [p.remaining for p in ledger.pending_episodes()] == [1]
    assert ledger.episodes_of("t") == [("run_dead", "ep_000001", "interrupted")]


def test_refreshes_are_owed_until_done(ledger: TriggerLedger, clock: FakeClock) -> None:
    ledger.accept([RefreshTrigger("r1", None, "x", POOL)], Position(HERE, 10, 1), clock.now())
    assert [r.id for r in ledger.pending_refreshes()] == ["r1"]
    ledger.refresh_done(["r1"], clock.now())
    assert ledger.pending_refreshes() == []


def test_completed_triggers_are_forgotten_after_the_keep_window(
    ledger: TriggerLedger, clock: FakeClock
) -> None:
    ledger.accept(
        [EpisodesTrigger("old", 1), RefreshTrigger("r", None, "x", POOL)],
        Position(HERE, 10, 2),
        clock.now(),
    )
    ledger.claim_episode("old", "run_a", "ep_000001", clock.now())
    ledger.end_episode("run_a", "ep_000001", "finished")
    ledger.refresh_done(["r"], clock.now())
    assert ledger.prune(clock.now() + timedelta(days=1)) == 0
    assert ledger.prune(clock.now() + timedelta(days=8)) == 2
    # The id may be accepted again now.
    (again,) = ledger.accept([EpisodesTrigger("old", 1)], Position(HERE, 20, 3), clock.now())
    assert again is not None


def test_a_corrupt_ledger_is_moved_aside(tmp_path: Path, clock: FakeClock) -> None:
    ledger_path(tmp_path).write_bytes(b"not sqlite " * 500)
    ledger = TriggerLedger.open(tmp_path, clock.now(), durable=False)
    try:
        assert ledger.position() is None  # no trigger file: nothing to skip to
        assert list(tmp_path.glob("*.corrupt-*"))
    finally:
        ledger.close()
