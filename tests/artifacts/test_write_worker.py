"""The writer process's loop: batches in, one reply each, errors as exceptions that pickle."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

from clmmd.artifacts.episode_write import EpisodeWrite, FolderNotMadeError
from clmmd.artifacts.write_worker import frame, parse_pairs, read_message, reply_for, serve
from clmmd.artifacts.writer import ArtifactExistsError


def replies_of(*requests: object) -> list[object]:
    out = io.BytesIO()
    status = serve(os.getppid(), io.BytesIO(b"".join(frame(r) for r in requests)), out)
    assert status == 0  # the end of the requests ends the loop
    out.seek(0)
    replies = []
    while (message := read_message(out)) is not None:
        replies.append(message)
    return replies


def test_each_batch_is_written_and_answered_by_its_id(tmp_path: Path) -> None:
    first = EpisodeWrite(tmp_path, "ep_000001", b"{}\n", files=(("result.json", b"{}\n"),))
    again = EpisodeWrite(tmp_path, "ep_000001", b"{}\n")
    (one, none_error), (two, error) = replies_of((7, first), (8, again))  # type: ignore[misc]
    assert (one, none_error, two) == (7, None, 8)
    assert isinstance(error, FolderNotMadeError)
    assert isinstance(error.error, ArtifactExistsError)
    assert (tmp_path / "ep_000001" / "result.json").read_bytes() == b"{}\n"


def test_a_request_that_is_not_a_batch_is_answered_with_an_error(tmp_path: Path) -> None:
    ((request_id, error),) = replies_of((3, "not a batch"))  # type: ignore[misc]
    assert request_id == 3
    assert isinstance(error, TypeError) and "EpisodeWrite" in str(error)
    assert list(tmp_path.iterdir()) == []


def test_an_error_that_does_not_pickle_still_comes_back_as_its_kind() -> None:
    class Odd(Exception):
        def __init__(self) -> None:
            super().__init__("odd failure")
            self.handle = lambda: None  # lambdas do not pickle

    request_id, error = pickle.loads(reply_for(4, Odd())[4:])
    assert request_id == 4 and isinstance(error, OSError) and "Odd: odd failure" in str(error)
    request_id, error = pickle.loads(reply_for(5, FolderNotMadeError(Odd()))[4:])
    assert isinstance(error, FolderNotMadeError) and "odd failure" in str(error)


def test_a_writer_whose_parent_changed_stops_before_writing(tmp_path: Path) -> None:
    batch = EpisodeWrite(tmp_path, "ep_000001", b"{}\n")
    out = io.BytesIO()
    assert serve(os.getpid(), io.BytesIO(frame((1, batch))), out) == 1  # not our parent's pid
    assert out.getvalue() == b"" and list(tmp_path.iterdir()) == []


def test_descriptor_pairs_parse() -> None:
    assert parse_pairs(["3:4", "10:11"]) == [(3, 4), (10, 11)]
