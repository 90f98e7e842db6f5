"""Snapshot latency while a slow refresh runs: does the episode read path ever wait on Dune?

Warms an intel cache from the mock source, then starts a forced refresh of every enabled key
for three pools against a source that takes 2 s per call (3 workers), and meanwhile takes
snapshots (10 enabled keys) on the same event loop, 0.2 ms apart. Prints p50/p99/max and the
ratio to the 1 ms target, plus the latency of snapshots served from disk (a reader whose
in-process mirror is empty, as in ``clmmd status``).

    python bench/intel.py [--duration 6] [--latency 2] [--workers 3] [--pause-ms 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog
from _common import Row, print_table, save

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clmmd.artifacts.base.clock import SystemClock, parse_utc
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.intel import MarketIntelligence
from clmmd.scheduler.mock_source import MockSource
from clmmd.scheduler.planner import PlannedFetch, candidate_requests
from clmmd.scheduler.refresher import Refresher
from clmmd.scheduler.registry import load_registry

POOLS = [
    "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
    "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8",
    "0x11b815efB8f581194ae79006d24E0d814B7697F6",
]
TARGET_MS = 1.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def describe(label: str, samples_ms: list[float]) -> tuple[float, float]:
    p50, p99 = percentile(samples_ms, 0.50), percentile(samples_ms, 0.99)
    print(
        f"{label}: n={len(samples_ms)} p50={p50 * 1000:.1f}us p99={p99 * 1000:.1f}us "
        f"max={max(samples_ms) * 1000:.1f}us mean={statistics.fmean(samples_ms) * 1000:.1f}us "
        f"| p99 / 1 ms target = {p99 / TARGET_MS:.3f}"
    )
    return p50, p99


async def main(duration_s: float, latency_s: float, workers: int, pause_s: float) -> None:
    clock = SystemClock()
    registry = load_registry()
    with tempfile.TemporaryDirectory() as tmp:
        cache = IntelCache(Path(tmp) / "cache")
        warm = await Refresher(MockSource(clock), cache, registry, clock).refresh_once(POOLS)
        print(f"warmed {warm.ok} keys")

        slow = Refresher(
            MockSource(clock, latency_s=latency_s), cache, registry, clock, workers=workers
        )
        planned = [
            PlannedFetch(req, spec, spec.priority, "forced", 0.0)
            for spec, req in candidate_requests(registry, POOLS)
        ]
        refresh = asyncio.create_task(slow.refresh(planned))
        intel = MarketIntelligence(cache, registry, clock)
        samples: list[float] = []
        started_at = clock.now()
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline:
            start = time.perf_counter_ns()
            snap = intel.snapshot(POOLS[0], "WETH-USDC", 1)
            samples.append((time.perf_counter_ns() - start) / 1e6)
            assert snap.hygiene["total_queries"] == 10
            await asyncio.sleep(pause_s)  # episodes do other work between snapshots
        writes_seen = sum(
            1
            for p in planned
            if (env := cache.get_envelope(p.key)) is not None
            and parse_utc(env.attempted_at) > started_at
        )
        print(
            f"refresh of {len(planned)} keys at {latency_s:g}s/call, {workers} workers: "
            f"{writes_seen} fetches stored during the {duration_s:g}s measurement, "
            f"peak in flight {slow.peak_in_flight}"
        )
        p50, p99 = describe("snapshot (mirror)", samples)

        disk_samples: list[float] = []
        for _ in range(200):
            reader = IntelCache(cache.directory)
            start = time.perf_counter_ns()
            MarketIntelligence(reader, registry, clock).snapshot(POOLS[0], "WETH-USDC", 1)
            disk_samples.append((time.perf_counter_ns() - start) / 1e6)
            reader.close()
        _, disk_p99 = describe("snapshot (disk, empty mirror)", disk_samples)

        await slow.close()
        refresh.cancel()
        await asyncio.gather(refresh, return_exceptions=True)
        cache.close()
    rows = [
        Row("snapshot p50 under refresh (ms)", p50, "ms", "-", None, None),
        Row(
            "snapshot p99 under refresh (ms)",
            p99,
            "ms",
            "< 1 ms",
            TARGET_MS / p99,
            p99 < TARGET_MS,
            f"{len(samples)} snapshots, {latency_s:g}s/fetch",
        ),
        Row("snapshot p99 from disk (ms)", disk_p99, "ms", "-", None, None, "empty mirror"),
    ]
    print_table(rows)
    settings = {
        "duration_s": duration_s,
        "source_latency_s": latency_s,
        "refresh_workers": workers,
        "pause_between_snapshots_ms": pause_s * 1000,
        "pools": len(POOLS),
    }
    print(f"saved {save('intel', rows, settings)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--pause-ms", type=float, default=0.2, help="pause between snapshots")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(main(args.duration, args.latency, args.workers, args.pause_ms / 1000))
