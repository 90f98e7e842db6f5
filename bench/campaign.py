"""Campaign throughput: in-process episodes vs one process per episode vs the disk's limit.

* in-process: ``run_campaign`` with N mock episodes, durable writes (fsync), 4 episode workers;
* process-per-episode (the seeds' way): ``clmmd campaign --episodes 1`` run K times;
* disk limit: the same number and sizes of files written with temp + fsync + link + dir fsync
  by the same number of threads, and nothing else.

    python bench/campaign.py [--episodes 500] [--processes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import Row, print_table, save

from clmmd.artifacts.base.clock import SystemClock
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.writer import append_line, create_episode_dir, write_new
from clmmd.env.base import ClmmEnv
from clmmd.env.mock import MockClmmEnv
from clmmd.service.config import load_settings
from clmmd.service.logging import configure_logging
from clmmd.service.runs.campaign import run_campaign
from clmmd.service.runs.warmup import warm_mock_intel
from clmmd.service.wiring import open_intel


async def in_process(
    data_dir: Path, episodes: int, workers: int, env: ClmmEnv | None = None
) -> tuple[float, RunLayout]:
    """Episodes/s of one in-process campaign (mock execution in ``env``'s market, default the
    synthetic simulator) and where it wrote."""
    clock = SystemClock()
    settings = load_settings(data_dir=data_dir, seed=1, episode_workers=workers)
    DURABLE["in_process"] = settings.durable_writes
    stack = open_intel(settings, clock)
    try:
        await warm_mock_intel(stack.cache, stack.registry, clock, list(settings.pools), 1)
        start = time.perf_counter()
        report = await run_campaign(
            settings,
            env=env or MockClmmEnv(),
            intel=stack.intel,
            episodes=episodes,
            clock=clock,
        )
        elapsed = time.perf_counter() - start
    finally:
        stack.close()
    assert report.complete, report.lost
    return episodes / elapsed, RunLayout(data_dir, report.run_id)


#: What CLMMD_DURABLE_WRITES each way actually ran with (the docs state it).
DURABLE: dict[str, object] = {}


def stage_median_ms(layout: RunLayout, stage: str) -> float:
    """Median of one runner stage over the run's episodes (from their timings.json)."""
    values = [
        json.loads((d / "timings.json").read_text())["stages_ms"][stage]
        for d in layout.episode_dirs()
    ]
    return statistics.median(values)


def per_process(data_dir: Path, count: int) -> float:
    env = {
        **os.environ,
        "CLMMD_DATA_DIR": str(data_dir),
        "HB_SEED": "1",
        "CLMMD_LOG_LEVEL": "warning",
    }
    DURABLE["per_process"] = os.environ.get("CLMMD_DURABLE_WRITES", "true (default)")
    start = time.perf_counter()
    for _ in range(count):
        subprocess.run(
            [sys.executable, "-m", "clmmd.service.cli", "campaign", "--episodes", "1"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return count / (time.perf_counter() - start)


def disk_limit(template: RunLayout, target: Path, workers: int) -> float:
    """Write the same files (names and sizes) as the campaign did, durably, nothing else."""
    episodes = [
        (d.name, {p.name: p.read_bytes() for p in d.iterdir()}) for d in template.episode_dirs()
    ]
    target.mkdir(parents=True)

    def one(item: tuple[str, dict[str, bytes]]) -> None:
        name, files = item
        folder = create_episode_dir(target, name, {"proposed": True})
        for fname, data in files.items():
            if fname == "proposal.json":
                continue
            if fname == "logs.jsonl":
                for line in data.splitlines():
                    append_line(folder / fname, line + b"\n")
            else:
                write_new(folder / fname, data)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, episodes))
    return len(episodes) / (time.perf_counter() - start)


def main() -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    configure_logging("warning", stream=open(os.devnull, "wb"))  # noqa: SIM115
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        root = Path(tmp)
        eps, layout = asyncio.run(in_process(root / "inproc", args.episodes, args.workers))
        disk = disk_limit(layout, root / "disk" / "episodes", args.workers)
        execute_ms = stage_median_ms(layout, "execute")
        proc = per_process(root / "proc", args.processes)
    rows = [
        Row(
            "campaign in-process (eps/s)",
            eps,
            "e/s",
            "-",
            None,
            None,
            f"{args.episodes} episodes, durable writes",
        ),
        Row(
            "campaign process-per-episode (eps/s)",
            proc,
            "e/s",
            "-",
            None,
            None,
            f"{args.processes} processes",
        ),
        Row("disk limit, same files (eps/s)", disk, "e/s", "-", None, None),
        Row(
            "execute stage per episode, median (ms)",
            execute_ms,
            "ms",
            "-",
            None,
            None,
            "mock simulation of 24 h in 5-min steps, with its worker-thread hop",
        ),
        Row(
            "in-process / process-per-episode",
            eps / proc,
            "x",
            ">= 10x",
            eps / proc / 10,
            eps / proc >= 10,
        ),
        Row(
            "in-process / disk limit",
            eps / disk,
            "x",
            ">= 0.5",
            eps / disk / 0.5,
            eps / disk >= 0.5,
        ),
    ]
    print_table(rows)
    settings = {
        "episodes": args.episodes,
        "episode_workers": args.workers,
        "processes": args.processes,
        "durable_writes": DURABLE,
        "seed": 1,
        "intel": "mock, warmed once (one market phase)",
    }
    print(f"saved {save('campaign', rows, settings)}")
    return rows


if __name__ == "__main__":
    main()
