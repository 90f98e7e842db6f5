"""write_files_new (several artifacts of one folder in one call), temp names, append_unlocked.

Kept apart from test_writer.py, whose contract tests stay as they were.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from clmmd.artifacts import writer
from clmmd.artifacts.writer import (
    TEMP_MARKER,
    ArtifactExistsError,
    append_unlocked,
    write_files_new,
)

FILES = [("reward.json", b"{}\n"), ("result.json", b'{"a": 1}\n'), ("metadata.json", b"[]\n")]


def test_a_batch_creates_every_file_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    write_files_new(tmp_path, FILES, durable=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, _ in FILES)
    assert all((tmp_path / n).read_bytes() == data for n, data in FILES)


def test_a_durable_batch_fsyncs_each_file_and_the_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders: list[Path] = []
    files: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(writer, "fsync_dir", folders.append)

    def count_fsync(fd: int) -> None:
        files.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", count_fsync)
    write_files_new(tmp_path, FILES)
    assert folders == [tmp_path]
    assert len(files) == len(FILES)


def test_a_batch_stops_at_an_existing_name_and_keeps_the_files_before_it(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_bytes(b"original\n")
    with pytest.raises(ArtifactExistsError, match=r"result\.json"):
        write_files_new(tmp_path, FILES, durable=False)
    assert (tmp_path / "result.json").read_bytes() == b"original\n"
    assert (tmp_path / "reward.json").read_bytes() == b"{}\n"
    assert not (tmp_path / "metadata.json").exists()
    assert not [p for p in tmp_path.iterdir() if TEMP_MARKER in p.name]


def test_temp_names_are_unique_hidden_and_name_the_process(tmp_path: Path) -> None:
    names = {writer._temp_path(tmp_path / "result.json").name for _ in range(1000)}
    assert len(names) == 1000
    assert all(n.startswith(f".result.json{TEMP_MARKER}{os.getpid()}-") for n in names)


def test_a_forked_child_draws_its_own_temp_names(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its first temp name and leave at once
        os.write(write_end, writer._temp_path(tmp_path / "x").name.encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 4096).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert f"{TEMP_MARKER}{pid}-" in child
    assert writer._NAMES.prefix not in child


def test_append_unlocked_appends_in_one_write_and_creates_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "logs.jsonl"
    writes: list[Any] = []
    real_write = os.write

    def counting(fd: int, data: Any) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting)
    append_unlocked(log, b'{"a":1}\n{"a":2}\n')
    append_unlocked(log, b'{"a":3}\n')
    assert log.read_bytes() == b'{"a":1}\n{"a":2}\n{"a":3}\n'
    assert writes == [b'{"a":1}\n{"a":2}\n', b'{"a":3}\n']


def test_append_unlocked_into_a_missing_folder_fails_without_creating_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        append_unlocked(tmp_path / "gone" / "logs.jsonl", b"x\n")
    assert not (tmp_path / "gone").exists()
