"""The atomic, immutable writer: crashes leave no partial artifact, nothing is overwritten."""

from __future__ import annotations

import errno
import multiprocessing
import os
import select
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import Proposal
from clmmd.artifacts.recovery import recover_run
from clmmd.artifacts.validate import validate_run
from clmmd.artifacts.writer import (
    TEMP_MARKER,
    ArtifactExistsError,
    append_line,
    create_episode_dir,
    dumps,
    replace_json,
    write_files_new,
    write_json_new,
    write_new,
)

FORK = multiprocessing.get_context("fork")
PAYLOAD = b'{"complete": true, "pad": "' + b"x" * 10_000 + b'"}\n'
RUN_ID = "run_20260301_120000_abcd"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def proposal(episode: str = "ep_000001") -> Proposal:
    return Proposal(run_id=RUN_ID, episode_id=episode, proposed=True, seed=7, fee_pips=500)


def residue(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if TEMP_MARKER in p.name)


def disk_error(*_: Any, **__: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


# --- write_new -------------------------------------------------------------------------------


def test_write_new_creates_the_file_with_exactly_the_data_and_no_residue(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_new(target, PAYLOAD)
    assert target.read_bytes() == PAYLOAD
    assert residue(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.parametrize("durable", [True, False])
def test_write_new_refuses_to_overwrite_and_keeps_the_original(
    tmp_path: Path, durable: bool
) -> None:
    target = tmp_path / "result.json"
    write_new(target, b"first\n", durable=durable)
    with pytest.raises(ArtifactExistsError, match="refusing to overwrite"):
        write_new(target, b"second\n", durable=durable)
    assert target.read_bytes() == b"first\n"
    assert residue(tmp_path) == []
    assert issubclass(ArtifactExistsError, FileExistsError)


def test_write_new_refuses_when_another_writer_wins_between_check_and_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The existence check is only an early exit: ``link`` itself refuses to replace."""
    target = tmp_path / "result.json"
    real_link = os.link

    def competitor_first(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        Path(dst).write_bytes(b"the competitor's artifact\n")
        real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", competitor_first)
    with pytest.raises(ArtifactExistsError):
        write_new(target, PAYLOAD)
    assert target.read_bytes() == b"the competitor's artifact\n"
    assert residue(tmp_path) == []


@pytest.mark.parametrize("failing", ["write", "fsync", "link"])
def test_a_failure_before_the_name_appears_leaves_no_partial_and_no_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    monkeypatch.setattr(os, failing, disk_error)
    target = tmp_path / "result.json"
    with pytest.raises(OSError, match="No space left"):
        write_new(target, PAYLOAD)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_json_new_writes_the_canonical_encoding(tmp_path: Path) -> None:
    target = tmp_path / "proposal.json"
    write_json_new(target, proposal())
    raw = target.read_bytes()
    assert raw == dumps(proposal())
    assert raw.endswith(b"}\n")
    assert Proposal.model_validate_json(raw) == proposal()
    keys = list(orjson.loads(raw))
    assert keys == sorted(keys)


def test_dumps_accepts_plain_objects_and_models_alike() -> None:
    assert dumps({"b": 1, "a": [1, 2]}) == b'{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert dumps(proposal()) == dumps(proposal().model_dump(mode="json"))


# --- replace_json ----------------------------------------------------------------------------


def test_replace_json_replaces_the_whole_document(tmp_path: Path) -> None:
    target = tmp_path / "metrics_summary.json"
    replace_json(target, {"episodes": 1, "pad": "y" * 5000})
    replace_json(target, {"episodes": 2})
    assert orjson.loads(target.read_bytes()) == {"episodes": 2}
    assert residue(tmp_path) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_replace_json_failure_keeps_the_previous_document_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "metrics_summary.json"
    replace_json(target, {"episodes": 1})
    before = target.read_bytes()
    monkeypatch.setattr(os, failing, disk_error)
    with pytest.raises(OSError):
        replace_json(target, {"episodes": 2})
    assert target.read_bytes() == before
    assert residue(tmp_path) == []


def test_replace_json_readers_only_ever_see_a_whole_document(tmp_path: Path) -> None:
    target = tmp_path / "metrics_summary.json"
    documents = [{"n": i, "pad": "z" * (7000 if i % 2 else 10)} for i in range(150)]
    replace_json(target, documents[0], durable=False)
    done = threading.Event()
    seen: list[object] = []

    def writer() -> None:
        for doc in documents[1:]:
            replace_json(target, doc, durable=False)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        seen.append(orjson.loads(target.read_bytes()))  # raises on a torn document
    thread.join()
    assert all(doc in documents for doc in seen)
    assert orjson.loads(target.read_bytes()) == documents[-1]


# --- create_episode_dir ----------------------------------------------------------------------


def test_episode_folder_appears_with_its_proposal(tmp_path: Path) -> None:
    episodes = tmp_path / "episodes"
    folder = create_episode_dir(episodes, "ep_000001", proposal())
    assert folder == episodes / "ep_000001"
    assert [p.name for p in folder.iterdir()] == ["proposal.json"]
    assert Proposal.model_validate_json((folder / "proposal.json").read_bytes()) == proposal()
    assert [p.name for p in episodes.iterdir()] == ["ep_000001"]


@pytest.mark.parametrize("existing_has_files", [True, False])
def test_episode_folder_is_never_replaced(tmp_path: Path, existing_has_files: bool) -> None:
    episodes = tmp_path / "episodes"
    final = episodes / "ep_000001"
    final.mkdir(parents=True)
    if existing_has_files:
        (final / "proposal.json").write_bytes(b"original\n")
    with pytest.raises(ArtifactExistsError, match="episode folder"):
        create_episode_dir(episodes, "ep_000001", proposal())
    assert [p.name for p in episodes.iterdir()] == ["ep_000001"]
    if existing_has_files:
        assert (final / "proposal.json").read_bytes() == b"original\n"


def test_episode_folder_race_lost_at_rename_is_a_refusal_and_cleans_staging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer creates the folder after our checks: rename fails, we refuse cleanly."""
    episodes = tmp_path / "episodes"
    real_rename = os.rename

    def competitor_first(src: Any, dst: Any, **kwargs: Any) -> None:
        (episodes / dst).mkdir()
        (episodes / dst / "proposal.json").write_bytes(b"winner\n")
        real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "rename", competitor_first)
    with pytest.raises(ArtifactExistsError):
        create_episode_dir(episodes, "ep_000001", proposal())
    assert [p.name for p in episodes.iterdir()] == ["ep_000001"]
    assert (episodes / "ep_000001" / "proposal.json").read_bytes() == b"winner\n"


@pytest.mark.parametrize("failing", ["fsync", "write"])
def test_failure_while_staging_leaves_no_episode_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    episodes = tmp_path / "episodes"
    episodes.mkdir()
    monkeypatch.setattr(os, failing, disk_error)
    with pytest.raises(OSError):
        create_episode_dir(episodes, "ep_000001", proposal())
    assert list(episodes.iterdir()) == []


# --- crashes: a child process SIGKILLed between the two steps --------------------------------


def _block_in(module: Any, name: str, ready_fd: int, block_fd: int) -> None:
    """Make ``module.name`` announce itself on ``ready_fd`` and then wait forever."""
    real = getattr(module, name)

    def blocking(*args: Any, **kwargs: Any) -> Any:
        os.write(ready_fd, b"!")
        os.read(block_fd, 1)  # nobody writes: the parent kills us here
        return real(*args, **kwargs)

    setattr(module, name, blocking)


def _child_write_new(path: str, block_at: str, ready_fd: int, block_fd: int) -> None:
    _block_in(os, block_at, ready_fd, block_fd)
    write_new(Path(path), PAYLOAD)


def _child_replace_json(path: str, block_at: str, ready_fd: int, block_fd: int) -> None:
    _block_in(os, block_at, ready_fd, block_fd)
    replace_json(Path(path), {"version": 2})


def _child_create_episode(path: str, block_at: str, ready_fd: int, block_fd: int) -> None:
    _block_in(os, block_at, ready_fd, block_fd)
    create_episode_dir(Path(path), "ep_000001", proposal(), files=[("result.json", PAYLOAD)])


def kill_child_inside(child: Callable[..., None], path: Path, block_at: str) -> None:
    """Run ``child`` in a forked process, SIGKILL it once it is blocked inside ``block_at``."""
    ready_r, ready_w = os.pipe()
    block_r, block_w = os.pipe()
    proc: BaseProcess = FORK.Process(target=child, args=(str(path), block_at, ready_w, block_r))
    proc.start()
    try:
        readable, _, _ = select.select([ready_r], [], [], 30)
        assert readable, f"the child never reached {block_at}"
        assert os.read(ready_r, 1) == b"!"
    finally:
        proc.kill()
        proc.join()
        for fd in (ready_r, ready_w, block_r, block_w):
            os.close(fd)
    assert proc.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("block_at", ["fsync", "link"])
def test_sigkill_between_temp_write_and_link_leaves_no_artifact(
    tmp_path: Path, block_at: str
) -> None:
    target = tmp_path / "result.json"
    kill_child_inside(_child_write_new, target, block_at)
    assert not target.exists()
    leftovers = residue(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [p.name for p in leftovers]
    assert len(leftovers) == 1
    assert leftovers[0].name.startswith(".result.json")  # hidden: never read as an artifact


@pytest.mark.parametrize("block_at", ["fsync", "replace"])
def test_sigkill_during_replace_json_keeps_the_previous_document(
    tmp_path: Path, block_at: str
) -> None:
    target = tmp_path / "metrics_summary.json"
    replace_json(target, {"version": 1})
    kill_child_inside(_child_replace_json, target, block_at)
    assert orjson.loads(target.read_bytes()) == {"version": 1}


@pytest.mark.parametrize("block_at", ["fsync", "close", "rename"])
def test_sigkill_while_staging_an_episode_leaves_only_a_hidden_staging_folder(
    tmp_path: Path, block_at: str
) -> None:
    layout = RunLayout(tmp_path / "data", RUN_ID)
    layout.episodes_dir.mkdir(parents=True)
    kill_child_inside(_child_create_episode, layout.episodes_dir, block_at)

    assert not layout.episode_dir("ep_000001").exists()
    assert layout.episode_dirs() == []
    (staging,) = list(layout.episodes_dir.iterdir())
    assert staging.is_dir()
    assert staging.name.startswith(".ep_000001")
    assert TEMP_MARKER in staging.name
    if block_at == "rename":  # the files were complete, only the rename was missing
        assert Proposal.model_validate_json((staging / "proposal.json").read_bytes())
        assert (staging / "result.json").read_bytes() == PAYLOAD

    violations = validate_run(layout)
    assert [v.path for v in violations] == [staging]
    assert "staging" in violations[0].message
    report = recover_run(layout, NOW)
    assert report.residue_removed == [str(staging)]
    assert list(layout.episodes_dir.iterdir()) == []
    assert validate_run(layout) == []


# --- append_line -----------------------------------------------------------------------------


def test_append_line_terminates_lines_and_keeps_order(tmp_path: Path) -> None:
    log = tmp_path / "logs.jsonl"
    append_line(log, b'{"a":1}')
    append_line(log, b'{"a":2}\n')
    append_line(log, b'{"a":3}\n{"a":4}\n', durable=True)  # several lines in one write
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [orjson.loads(line) for line in lines[:-1]] == [
        {"a": 1},
        {"a": 2},
        {"a": 3},
        {"a": 4},
    ]


WRITERS = 4
LINES_PER_WRITER = 2000
CHUNK = 1024


def _line_for(writer: int, index: int) -> bytes:
    pad_len = (index * 7919 + writer * 131) % 8000 + 1
    pad = chr(ord("a") + writer) * pad_len
    return orjson.dumps({"w": writer, "i": index, "pad": pad})


def _append_worker(path: str, writer: int, start: Any) -> None:
    # Short, yielding writes: every line takes several write() calls, so only the lock keeps
    # another process's bytes from landing inside it.
    real_write = os.write

    def chunked_write(fd: int, data: Any) -> int:
        written = real_write(fd, bytes(data[:CHUNK]))
        os.sched_yield()
        return written

    os.write = chunked_write
    start.wait()
    for index in range(LINES_PER_WRITER):
        append_line(Path(path), _line_for(writer, index))


def test_concurrent_appends_from_processes_never_interleave_within_a_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "logs.jsonl"
    start = FORK.Event()
    procs = [FORK.Process(target=_append_worker, args=(str(log), w, start)) for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * WRITERS

    data = log.read_bytes()
    assert data.endswith(b"\n")
    lines = data[:-1].split(b"\n")
    assert len(lines) == WRITERS * LINES_PER_WRITER
    seen: dict[int, list[int]] = {w: [] for w in range(WRITERS)}
    for line in lines:
        assert line == _line_for(*_ids(line)), "a line was torn or interleaved"
        writer, index = _ids(line)
        seen[writer].append(index)
    # Each process's own lines stay in its order, and none is lost.
    assert all(indices == list(range(LINES_PER_WRITER)) for indices in seen.values())


def _ids(line: bytes) -> tuple[int, int]:
    obj = orjson.loads(line)
    return int(obj["w"]), int(obj["i"])


def test_move_aside_never_overwrites_an_earlier_one(tmp_path: Path) -> None:
    from clmmd.artifacts.writer import move_aside

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    first, second = tmp_path / "state.db", tmp_path / "state.db"
    first.write_text("one")
    (tmp_path / "state.db-wal").write_text("wal")
    moved = move_aside(first, now, companions=("-wal", "-shm"))
    second.write_text("two")
    again = move_aside(second, now)
    assert moved.name == "state.db.corrupt-20260301T120000Z"
    assert again.name == "state.db.corrupt-20260301T120000Z-2"
    assert (moved.read_text(), again.read_text()) == ("one", "two")
    assert (tmp_path / "state.db.corrupt-20260301T120000Z-wal").read_text() == "wal"


# --- write_files_new: a durable batch of several files ----------------------------------------


def test_a_durable_batch_stops_at_the_first_existing_name_and_leaves_no_temps(
    tmp_path: Path,
) -> None:
    (tmp_path / "b.json").write_bytes(b"original\n")
    batch = [("a.json", b"A\n"), ("b.json", b"B\n"), ("c.json", b"C\n")]
    with pytest.raises(ArtifactExistsError, match=r"b\.json"):
        write_files_new(tmp_path, batch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]
    assert (tmp_path / "a.json").read_bytes() == b"A\n"
    assert (tmp_path / "b.json").read_bytes() == b"original\n"


def test_a_durable_batch_whose_fsync_fails_names_nothing_and_leaves_no_temps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", disk_error)
    with pytest.raises(OSError):
        write_files_new(tmp_path, [("a.json", b"A\n"), ("b.json", b"B\n")])
    assert list(tmp_path.iterdir()) == []
