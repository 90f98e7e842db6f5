"""Experiment for the durable campaign ratio (issue 18, not part of ``make bench``): do durable
episode writes keep their pace while the main thread computes, if they run in threads of this
process or in a writer process?

The same synthetic episode files (a folder with proposal.json, logs.jsonl, four JSON files;
every file fsynced, as the store writes them) are written four ways, ``--episodes`` each:

* threads alone: 4 threads, nothing else running (bench/campaign.py's disk-limit shape);
* threads + busy main thread: the main thread spins ``--compute-ms`` of Python per episode (a
  stand-in for the next episode's simulation) and hands each episode to the 4 threads;
* processes alone / processes + busy main thread: the same with 4 writer processes.

If the campaign's gap to the disk limit is the GIL (a write thread waits for the computing
thread at each of its system calls), the busy-thread row falls well below "threads alone"
while the busy-process row does not.

    ../.venv/bin/python writer_process.py [--episodes 1000] [--compute-ms 1.2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from pathlib import Path

from _common import scratch_root

from clmmd.artifacts.writer import append_unlocked, create_episode_dir, write_files_new

LAST_BATCH = ("reward.json", "result.json", "timings.json", "metadata.json")
FILES = {
    "logs.jsonl": b'{"event":"step"}\n' * 30,
    **{name: b'{"x":%d}' % i * 150 for i, name in enumerate(LAST_BATCH)},
}
WORKERS = 4


def write_episode(target: str, name: str) -> None:
    """One episode's files, as the store writes a durable episode."""
    folder = create_episode_dir(Path(target), name, {"proposed": True}, durable=True)
    append_unlocked(folder / "logs.jsonl", FILES["logs.jsonl"])
    write_files_new(folder, [(n, FILES[n]) for n in LAST_BATCH], durable=True)


def spin(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def run(make: Callable[[], Executor], target: Path, episodes: int, compute_ms: float) -> float:
    """Episodes per second; ``compute_ms`` > 0 spins that long in this thread per episode."""
    target.mkdir()
    with make() as pool:
        wait([pool.submit(abs, i) for i in range(WORKERS)])  # workers started
        started = time.perf_counter()
        in_flight: list[Future[None]] = []
        for i in range(episodes):
            spin(compute_ms)
            in_flight.append(pool.submit(write_episode, str(target), f"ep_{i:06d}"))
            if compute_ms and len(in_flight) > 2 * WORKERS:
                in_flight.pop(0).result()
        wait(in_flight)
        return episodes / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--compute-ms", type=float, default=1.2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="writer-process-", dir=scratch_root()))
    try:
        ways = {
            "threads alone": (lambda: ThreadPoolExecutor(WORKERS), 0.0),
            "threads + busy main thread": (lambda: ThreadPoolExecutor(WORKERS), args.compute_ms),
            "processes alone": (lambda: ProcessPoolExecutor(WORKERS), 0.0),
            "processes + busy main thread": (
                lambda: ProcessPoolExecutor(WORKERS),
                args.compute_ms,
            ),
        }
        pace = {
            name: run(make, root / str(i), args.episodes, compute)
            for i, (name, (make, compute)) in enumerate(ways.items())
        }
    finally:
        shutil.rmtree(root)
    print(
        f"settings: {args.episodes} episodes per way, {WORKERS} workers, "
        f"compute {args.compute_ms} ms per episode; load {os.getloadavg()[0]:.2f}"
    )
    for name, per_s in pace.items():
        print(f"{name:<30} {per_s:8.0f} episodes/s")
    limit = pace["threads alone"]
    print(
        f"busy main thread, threads:   {pace['threads + busy main thread'] / limit:.2f} of "
        "threads alone"
    )
    print(
        f"busy main thread, processes: {pace['processes + busy main thread'] / limit:.2f} of "
        "threads alone"
    )


if __name__ == "__main__":
    main()
