"""WriterProcesses: batches written in writer processes, errors typed, deaths contained."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clmmd.artifacts.episode_write import EpisodeWrite, FolderNotMadeError
from clmmd.artifacts.write_worker import HEADER_SIZE, frame
from clmmd.artifacts.writer import ArtifactExistsError
from clmmd.service.runs.writer_processes import WriterProcessDied, WriterProcesses, _Writer

FILES = (("reward.json", b"{}\n"), ("result.json", b"{}\n"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


async def test_batches_are_written_by_processes_that_start_once(tmp_path: Path) -> None:
    writers = WriterProcesses(3)
    try:
        assert await writers.ready()
        await asyncio.gather(
            *(
                writers.apply(EpisodeWrite(tmp_path, f"ep_{i:06d}", b"{}\n", b"l\n", FILES))
                for i in range(1, 31)
            )
        )
        assert writers.starts == 1
        assert writers.pid is not None and writers.pid != os.getpid()
        if sys.platform.startswith("linux"):
            assert len(children_of(writers.pid)) == 2  # forks of the first: 3 writers
    finally:
        await writers.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ep_{i:06d}" for i in range(1, 31)]
    assert all(len(list(p.iterdir())) == 4 for p in tmp_path.iterdir())


async def test_errors_come_back_with_their_type(tmp_path: Path) -> None:
    writers = WriterProcesses(2)
    try:
        assert await writers.ready()
        await writers.apply(EpisodeWrite(tmp_path, "ep_000001", b"{}\n"))
        with pytest.raises(FolderNotMadeError) as made:
            await writers.apply(EpisodeWrite(tmp_path, "ep_000001", b"{}\n"))
        assert isinstance(made.value.error, ArtifactExistsError)
        with pytest.raises(ArtifactExistsError):
            await writers.apply(EpisodeWrite(tmp_path, "ep_000001", None, files=(FILES[0],) * 2))
        with pytest.raises(FileNotFoundError) as missing:
            await writers.apply(EpisodeWrite(tmp_path, "ep_000009", None, b"x\n"))
        assert missing.value.errno == errno.ENOENT
    finally:
        await writers.close()
    with pytest.raises(RuntimeError, match="closed"):
        await writers.apply(EpisodeWrite(tmp_path, "ep_000002", b"{}\n"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_a_writer_that_dies_fails_its_batch_and_the_next_batch_gets_a_new_one(
    tmp_path: Path,
) -> None:
    writers = WriterProcesses(1)
    try:
        assert await writers.ready()
        await writers.apply(EpisodeWrite(tmp_path, "ep_000001", b"{}\n"))
        first = writers.pid
        assert first is not None
        os.kill(first, signal.SIGINT)  # Ctrl-C in a terminal reaches the group: ignored
        os.kill(first, signal.SIGTERM)  # so is systemd's stop signal
        await writers.apply(EpisodeWrite(tmp_path, "ep_000002", b"{}\n"))
        # A FIFO as logs.jsonl: appending to it blocks the writer until somebody reads.
        os.mkfifo(tmp_path / "ep_000002" / "logs.jsonl")
        stuck = asyncio.ensure_future(
            writers.apply(EpisodeWrite(tmp_path, "ep_000002", None, b"line\n"))
        )
        await asyncio.sleep(0.2)
        assert not stuck.done()
        os.kill(first, signal.SIGKILL)
        with pytest.raises(WriterProcessDied, match="exited before answering"):
            await asyncio.wait_for(stuck, 10)
        await writers.apply(EpisodeWrite(tmp_path, "ep_000003", b"{}\n"))
        assert await writers.ready()
        assert writers.starts == 2 and writers.pid != first
    finally:
        await writers.close()
    assert (tmp_path / "ep_000003" / "proposal.json").exists()


CAMPAIGN = """
import asyncio, os, sys
from pathlib import Path
from clmmd.artifacts.episode_write import EpisodeWrite
from clmmd.service.runs.writer_processes import WriterProcesses

async def main() -> None:
    root = Path(sys.argv[1])
    writers = WriterProcesses(2)
    await writers.ready()
    await writers.apply(EpisodeWrite(root, "ep_000001", b"{}\\n"))
    os.mkfifo(root / "ep_000001" / "logs.jsonl")
    # Both writers block appending to the FIFO: only their parent's death can end them.
    for _ in range(2):
        asyncio.ensure_future(writers.apply(EpisodeWrite(root, "ep_000001", None, b"x\\n")))
    await asyncio.sleep(0.3)
    print(writers.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc")
def test_writers_die_with_a_campaign_killed_by_sigkill(tmp_path: Path) -> None:
    campaign = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CAMPAIGN), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert campaign.stdout is not None
        first = int(campaign.stdout.readline())
        writers = [first, *children_of(first)]
        assert len(writers) == 2 and all(alive(pid) for pid in writers)
    finally:
        campaign.kill()
        campaign.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in writers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(alive(pid) for pid in writers)


async def test_batches_before_the_writers_are_up_or_when_they_cannot_start_use_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clmmd.service.runs.writer_processes as module

    in_this_process: list[str] = []
    real = module.apply_episode_write

    def recording(write: EpisodeWrite) -> None:
        in_this_process.append(write.episode_id)
        real(write)

    monkeypatch.setattr(module, "apply_episode_write", recording)
    writers = WriterProcesses(2)
    try:
        writers.start()
        await writers.apply(EpisodeWrite(tmp_path, "ep_000001", b"{}\n"))  # still booting
        assert in_this_process == ["ep_000001"]
        assert await writers.ready()
        await writers.apply(EpisodeWrite(tmp_path, "ep_000003", b"{}\n"))
        assert in_this_process == ["ep_000001"]  # once up, the writers take the batches
        assert (tmp_path / "ep_000003" / "proposal.json").exists()
    finally:
        await writers.close()

    async def no_processes(*_: object, **__: object) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", no_processes)
    broken = WriterProcesses(2)
    try:
        assert not await broken.ready()
        await broken.apply(EpisodeWrite(tmp_path, "ep_000002", b"{}\n", files=FILES))
        assert not await broken.ready() and broken.starts == 0  # not retried per batch
    finally:
        await broken.close()
    assert sorted(p.name for p in (tmp_path / "ep_000002").iterdir()) == [
        "proposal.json",
        "result.json",
        "reward.json",
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_writers_never_see_the_campaigns_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUNE_API_KEY", "dune-secret-value")
    monkeypatch.setenv("CLMMD_GATEWAY_API_KEY", "gateway-secret-value")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    writers = WriterProcesses(2)
    try:
        assert await writers.ready()
        assert writers.pid is not None
        pids = [writers.pid, *children_of(writers.pid)]
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            names = {entry.split(b"=", 1)[0] for entry in environ if entry}
            assert b"DUNE_API_KEY" not in names and b"CLMMD_GATEWAY_API_KEY" not in names
            assert b"secret" not in b"".join(environ)
            assert b"LC_ALL" in names  # the locale goes along
        await writers.apply(EpisodeWrite(tmp_path, "ep_000001", b"{}\n"))  # and they work
    finally:
        await writers.close()


class _Replies(asyncio.ReadTransport):
    """The read end of a writer's reply pipe, as the protocol sees it (closing it reports the
    loss a loop turn later, as a pipe transport does: the test calls connection_lost)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True


async def test_replies_answer_their_batches_however_the_pipe_splits_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone: list[object] = []
    writer = _Writer(gone.append)
    replies = _Replies()
    writer.connection_made(replies)
    loop = asyncio.get_running_loop()
    futures = {i: loop.create_future() for i in (1, 2, 3)}
    writer.pending.update(futures)
    stream = frame((2, None)) + frame((1, ArtifactExistsError("reward.json exists")))
    for i in range(0, len(stream), 3):  # three bytes at a time: headers and bodies cut apart
        writer.data_received(stream[i : i + 3])
    assert futures[2].result() is None
    with pytest.raises(ArtifactExistsError):
        futures[1].result()
    assert not futures[3].done() and not gone  # nothing answered it yet: it still waits
    announced = frame((3, None))[:HEADER_SIZE]
    writer.data_received(announced)
    assert not futures[3].done()

    # A body that is not a reply of ours: the writer is no longer trusted, its batches fail.
    writer.data_received(b"{" * (len(frame((3, None))) - HEADER_SIZE))
    assert replies.closed and gone == [writer]  # given up at once: no batch is sent to it
    assert not futures[3].done()
    writer.connection_lost(None)  # the pipe's own report, a loop turn later
    assert writer.gone.done()
    with pytest.raises(WriterProcessDied):
        futures[3].result()
    assert writer.pending == {}


async def test_a_writer_that_ends_fails_only_the_batches_it_still_held() -> None:
    gone: list[object] = []
    writer = _Writer(gone.append)
    writer.connection_made(_Replies())
    loop = asyncio.get_running_loop()
    done, held = loop.create_future(), loop.create_future()
    writer.pending.update({1: done, 2: held})
    writer.data_received(frame((1, None)))
    writer.connection_lost(None)
    assert done.result() is None
    with pytest.raises(WriterProcessDied):
        held.result()
    assert gone == [writer]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_a_start_whose_pipes_cannot_be_connected_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    started: list[asyncio.subprocess.Process] = []
    real_exec, real_connect = asyncio.create_subprocess_exec, loop.connect_write_pipe
    connected: list[object] = []

    async def recording_exec(*args: object, **kwargs: object) -> asyncio.subprocess.Process:
        process = await real_exec(*args, **kwargs)  # type: ignore[arg-type]
        started.append(process)
        return process

    async def second_fails(*args: object, **kwargs: object) -> object:
        if connected:
            raise OSError(errno.EMFILE, "Too many open files")
        connected.append(await real_connect(*args, **kwargs))  # type: ignore[arg-type]
        return connected[-1]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    monkeypatch.setattr(loop, "connect_write_pipe", second_fails)
    descriptors = len(os.listdir("/proc/self/fd"))
    writers = WriterProcesses(3)
    try:
        assert not await writers.ready()
        await writers.apply(EpisodeWrite(tmp_path, "ep_000001", b"{}\n"))  # by a thread
    finally:
        await writers.close()
    await asyncio.sleep(0)  # the closed transports let go of their pipes on the next turn
    assert len(started) == 1 and started[0].returncode is not None  # killed and reaped
    assert len(os.listdir("/proc/self/fd")) == descriptors
    assert (tmp_path / "ep_000001" / "proposal.json").exists()
