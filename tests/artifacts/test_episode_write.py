"""EpisodeWrite: one encoded batch; a folder made with its batch appears whole or not at all."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from clmmd.artifacts.episode_write import EpisodeWrite, FolderNotMadeError, apply_episode_write
from clmmd.artifacts.writer import TEMP_MARKER, ArtifactExistsError

FILES = (("reward.json", b'{"r": 1}\n'), ("result.json", b'{"s": "ok"}\n'))


def test_a_folder_made_with_its_batch_holds_everything_at_once(tmp_path: Path) -> None:
    write = EpisodeWrite(tmp_path, "ep_000001", b"{}\n", b'{"event":"x"}\n', FILES)
    apply_episode_write(write)
    folder = tmp_path / "ep_000001"
    assert sorted(p.name for p in folder.iterdir()) == [
        "logs.jsonl",
        "proposal.json",
        "result.json",
        "reward.json",
    ]
    assert (folder / "result.json").read_bytes() == b'{"s": "ok"}\n'
    assert (folder / "logs.jsonl").read_bytes() == b'{"event":"x"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["ep_000001"]  # no staging left


def test_a_batch_into_an_existing_folder_appends_logs_and_never_overwrites(tmp_path: Path) -> None:
    apply_episode_write(EpisodeWrite(tmp_path, "ep_000001", b"{}\n", b"a\n"))
    apply_episode_write(EpisodeWrite(tmp_path, "ep_000001", None, b"b\n", FILES[:1]))
    folder = tmp_path / "ep_000001"
    assert (folder / "logs.jsonl").read_bytes() == b"a\nb\n"
    with pytest.raises(ArtifactExistsError):
        apply_episode_write(EpisodeWrite(tmp_path, "ep_000001", None, files=FILES))
    assert (folder / "reward.json").read_bytes() == FILES[0][1]
    assert (folder / "result.json").exists() is False  # the batch stopped at the first refusal


def test_a_failure_while_making_the_folder_leaves_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    created: list[str] = []

    def full_at_result(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if path == "result.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        created.append(str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", full_at_result)
    write = EpisodeWrite(tmp_path, "ep_000001", b"{}\n", b"", FILES)
    with pytest.raises(FolderNotMadeError) as caught:
        apply_episode_write(write)
    monkeypatch.undo()
    assert isinstance(caught.value.error, OSError) and caught.value.error.errno == errno.ENOSPC
    assert "reward.json" in created  # it failed part-way through the batch
    assert list(tmp_path.iterdir()) == []  # and left neither folder nor staging


def test_a_batch_and_its_folder_error_travel_through_pickle(tmp_path: Path) -> None:
    write = EpisodeWrite(tmp_path, "ep_000002", b"{}\n", b"l\n", FILES, durable=False)
    assert pickle.loads(pickle.dumps(write)) == write
    error = FolderNotMadeError(OSError(errno.ENOSPC, "No space left on device"))
    back = pickle.loads(pickle.dumps(error))
    assert isinstance(back, FolderNotMadeError)
    assert isinstance(back.error, OSError) and back.error.errno == errno.ENOSPC
    assert str(back) == str(error.error)


def test_an_existing_folder_is_refused_as_folder_not_made(tmp_path: Path) -> None:
    apply_episode_write(EpisodeWrite(tmp_path, "ep_000001", b'{"first": 1}\n'))
    with pytest.raises(FolderNotMadeError) as caught:
        apply_episode_write(EpisodeWrite(tmp_path, "ep_000001", b'{"second": 2}\n', files=FILES))
    assert isinstance(caught.value.error, ArtifactExistsError)
    assert (tmp_path / "ep_000001" / "proposal.json").read_bytes() == b'{"first": 1}\n'
    assert not [p for p in tmp_path.iterdir() if TEMP_MARKER in p.name]
