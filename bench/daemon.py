"""Daemon benchmarks.

* trigger latency: append → refresh start, through the real TriggerTail (directory watch);
* refresh wall time for K keys, W workers, latency d against the ideal ceil(K/W)·d, and the peak
  number of concurrent fetches;
* memory: RSS of a real ``clmmd run`` after 100 episodes and after 10,000;
* idle CPU of that process over 60 s.

    python bench/daemon.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import Row, print_table, save

from clmmd.artifacts.base.clock import SystemClock
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.mock_source import MockSource
from clmmd.scheduler.planner import PlannedFetch, candidate_requests
from clmmd.scheduler.refresher import Refresher
from clmmd.scheduler.registry import load_registry
from clmmd.scheduler.trigger_ledger import TriggerLedger
from clmmd.scheduler.trigger_lines import EpisodesTrigger, RefreshTrigger
from clmmd.scheduler.trigger_tail import TriggerTail
from clmmd.scheduler.triggers import trigger_episodes, trigger_refresh
from clmmd.service.logging import configure_logging

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
POOLS = [
    POOL,
    "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8",
    "0x11b815efB8f581194ae79006d24E0d814B7697F6",
]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def trigger_latency(root: Path, count: int) -> tuple[float, float]:
    # The daemon's own settings: the ledger commits each batch without fsync when durable
    # writes are off, as they are for every daemon this benchmark starts.
    ledger = TriggerLedger.open(root, datetime.now(UTC), durable=False)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def on_refresh(trigger: RefreshTrigger) -> None:
        if trigger.id in sent:
            latencies.append(time.perf_counter() - sent[trigger.id])
        if len(latencies) >= count:
            done.set()

    async def on_episodes(trigger: EpisodesTrigger) -> None:
        return None

    tail = TriggerTail(
        root,
        ledger,
        SystemClock(),
        on_refresh=on_refresh,
        on_episodes=on_episodes,
        poll_interval_s=30.0,
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(tail.run(stop))
    await asyncio.sleep(0.5)

    def writer() -> None:
        for _ in range(count):
            start = time.perf_counter()
            trigger_id = trigger_refresh("bench", POOL, data_dir=root)
            sent[trigger_id] = start
            time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    await asyncio.wait_for(done.wait(), timeout=count * 0.02 + 60)
    thread.join()
    stop.set()
    await runner
    ledger.close()
    return pct(latencies, 0.5) * 1000, pct(latencies, 0.99) * 1000


async def refresh_wall(root: Path, latency_s: float, workers: int) -> tuple[float, float, int, int]:
    clock = SystemClock()
    registry = load_registry()
    cache = IntelCache(root / "cache2")
    refresher = Refresher(
        MockSource(clock, latency_s=latency_s), cache, registry, clock, workers=workers
    )
    planned = [
        PlannedFetch(req, spec, spec.priority, "forced", 0.0)
        for spec, req in candidate_requests(registry, POOLS)
    ]
    start = time.perf_counter()
    await refresher.refresh(planned)
    wall = time.perf_counter() - start
    cache.close()
    ideal = math.ceil(len(planned) / workers) * latency_s
    return wall, ideal, len(planned), refresher.peak_in_flight


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def finished_episodes(data_dir: Path) -> int:
    runs = sorted((data_dir / "runs").glob("run_*"))
    if not runs:
        return 0
    return sum(1 for d in (runs[-1] / "episodes").glob("ep_*") if (d / "metadata.json").exists())


def wait_for(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark daemon did not get there in time")
        time.sleep(0.2)


def daemon_memory_and_idle(root: Path, small: int, large: int, idle_s: float) -> dict[str, float]:
    data_dir = root / "daemon"
    env = {
        **os.environ,
        "CLMMD_DATA_DIR": str(data_dir),
        "CLMMD_HTTP_LISTEN": "off",
        "CLMMD_DURABLE_WRITES": "false",
        "CLMMD_LOG_LEVEL": "warning",
        "HB_SEED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "clmmd.service.cli", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (data_dir / "runs").is_dir(), 60)
        time.sleep(2)
        trigger_episodes(small, data_dir=data_dir)
        wait_for(lambda: finished_episodes(data_dir) >= small, 120)
        time.sleep(1)
        rss_small = rss_kib(proc.pid)
        remaining = large - small
        while remaining > 0:
            batch = min(remaining, 10_000)
            trigger_episodes(batch, data_dir=data_dir)
            remaining -= batch
        wait_for(lambda: finished_episodes(data_dir) >= large, 1800)
        time.sleep(1)
        rss_large = rss_kib(proc.pid)
        cpu_before, wall_before = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(idle_s)
        idle_pct = 100 * (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - wall_before)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return {
        "rss_small_mib": rss_small / 1024,
        "rss_large_mib": rss_large / 1024,
        "idle_cpu_pct": idle_pct,
    }


def main() -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer episodes, 10 s idle")
    args = parser.parse_args()
    configure_logging("warning", stream=open(os.devnull, "wb"))  # noqa: SIM115
    large = 2_000 if args.quick else 10_000
    idle = 10.0 if args.quick else 60.0
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        root = Path(tmp)
        p50, p99 = asyncio.run(trigger_latency(root, 200))
        wall, ideal, keys, peak = asyncio.run(refresh_wall(root, 0.2, 3))
        mem = daemon_memory_and_idle(root, 100, large, idle)
    growth = mem["rss_large_mib"] - mem["rss_small_mib"]
    rows = [
        Row("trigger append -> refresh start p50 (ms)", p50, "ms", "-", None, None),
        Row(
            "trigger append -> refresh start p99 (ms)",
            p99,
            "ms",
            "<= 50 ms",
            50 / p99,
            p99 <= 50,
            "200 triggers, 20 ms apart",
        ),
        Row(
            "refresh wall / ideal ceil(K/W)*d",
            wall / ideal,
            "x",
            "<= 1.15",
            1.15 / (wall / ideal),
            wall / ideal <= 1.15,
            f"K={keys} W=3 d=0.2s, wall {wall:.2f}s ideal {ideal:.2f}s",
        ),
        Row("refresh peak concurrent fetches", peak, "", "<= 3", 3 / max(peak, 1), peak <= 3),
        Row(
            f"daemon RSS growth 100 -> {large} episodes",
            growth,
            "MiB",
            "<= 10 MiB",
            10 / max(growth, 0.01),
            growth <= 10,
            f"{mem['rss_small_mib']:.1f} -> {mem['rss_large_mib']:.1f} MiB",
        ),
        Row(
            f"daemon idle CPU over {idle:g} s",
            mem["idle_cpu_pct"],
            "%",
            "< 1 %",
            1 / max(mem["idle_cpu_pct"], 0.001),
            mem["idle_cpu_pct"] < 1,
        ),
    ]
    print_table(rows)
    settings = {
        "triggers": 200,
        "trigger_spacing_ms": 20,
        "refresh": "K enabled keys of 3 pools, W=3 workers, d=0.2 s per fetch",
        "memory_episodes": [100, large],
        "idle_s": idle,
        "daemon_env": "CLMMD_DURABLE_WRITES=false, CLMMD_LOG_LEVEL=warning, "
        "CLMMD_HTTP_LISTEN=off, HB_SEED=1",
    }
    print(f"saved {save('daemon', rows, settings)}")
    return rows


if __name__ == "__main__":
    main()
