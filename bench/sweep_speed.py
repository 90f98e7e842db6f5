"""clmmd sweep's compute on Ray with 2 workers against serial, and Ray's per-task overhead.

The same batches (pure tasks: a slice of the grid and the shared context in, packed
evaluations out; the default cut of ``clmmd sweep``) run three ways in one process, the serial
run first and last (its mean is the baseline, so a machine that got busier or quieter during
the run shows as a gap between the two), each run on a fresh copy of the context:

* serial, in this process;
* Ray, ``ray.init(num_cpus=2)``, after a warm-up round (worker processes started, clmmd
  imported in them): the steady state a sweep of many batches sees;
* Ray, N empty slices through the same task: the per-task overhead alone.

Before and after, two plain busy-loop processes measure how many cores two workers can get
at all right now, and how much work they do against one loop alone (on a quiet 2-core
machine: 2.0 both): the ceiling of the speed-up. Because the machine is shared, the CPU
seconds of each way are printed too: the serial run's against the Ray run's workers (whole
processes), head and Ray's own processes (read from /proc), and the speed-up their ratio
allows on two free cores.

Target: speed-up >= 1.7x for a grid of >= 2,000 episode evaluations. Also printed: the cold
first round (worker start-up included), ``ray.init`` time, and the load average before and
after (the machine is shared; the lead re-runs this on a quiet one). Writing the artifacts is
the head's, the same for both, and not part of the compared figure.

    ../.venv/bin/python sweep_speed.py [--seeds 20] [--episodes 50] [--repeats 3] \
        [--market synthetic|replay]

``--market replay``: a month of synthetic Swap history of the first pool (written as
``clmmd history`` would), that pool only, twice the seeds (the same grid size).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Row, print_table, save

from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import FakeClock
from clmmd.env.base import KNOWN_POOLS
from clmmd.env.history_io import parquet_bytes
from clmmd.env.replay_synth import synthetic_history
from clmmd.service.analysis.sweep import SweepGrid, default_batch_size, sweep_context
from clmmd.service.analysis.sweep_exec import RayExecutor, SerialExecutor, ray_task
from clmmd.service.analysis.sweep_grid import SweepBatch, SweepContext, make_batches, parse_arms
from clmmd.service.config import load_settings
from clmmd.service.logging import configure_logging
from clmmd.service.runs.opening import episode_settings

TARGET = 1.7


def _busy(seconds: float, out: Any) -> None:
    started, cpu, chunks, x = time.perf_counter(), time.process_time(), 0, 0.0
    while time.perf_counter() - started < seconds:
        for _ in range(2_000):  # a fixed piece of pure-Python work
            x = x * 0.5 + 1.0
        chunks += 1
    wall = time.perf_counter() - started
    out.put(((time.process_time() - cpu) / wall, chunks / wall))


def parallel_capacity(processes: int = 2, seconds: float = 2.0) -> tuple[float, float]:
    """What ``processes`` busy loops get together right now: CPU seconds per second (cores)
    and pieces of work per second. The cores are the ceiling of any speed-up with that many
    workers on this (shared) machine, if a core's second bought the same work whoever else
    ran; the work per second, against one loop alone, says whether it does."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_busy, args=(seconds, queue)) for _ in range(processes)]
    for w in workers:
        w.start()
    shares = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    return float(sum(c for c, _ in shares)), float(sum(r for _, r in shares))


def capacity() -> tuple[float, float]:
    """Cores two busy loops get, and how much work they do against one loop alone."""
    alone = parallel_capacity(1)[1]
    cores, work = parallel_capacity(2)
    return cores, work / alone


def build_batches(
    seeds: int, episodes: int, workers: int, market: str = "synthetic"
) -> tuple[SweepContext, list[SweepBatch], int]:
    """The grid clmmd sweep would run, cut as it would cut it for ``workers`` workers:
    2 pools × 5 arms × ``seeds`` × ``episodes`` on the synthetic market; on the replayed one
    (``market`` "replay": a month of synthetic Swap history of the first pool, written to a
    Parquet file as ``clmmd history`` would) that pool with twice the seeds, the same size."""
    folder = Path(tempfile.mkdtemp(prefix="clmmd-bench-sweep-"))
    pools = tuple(KNOWN_POOLS.values())[:2]
    seed_list = tuple(range(1, seeds + 1))
    if market == "replay":
        pools, seed_list = pools[:1], tuple(range(1, 2 * seeds + 1))
        history = folder / "history.parquet"
        history.write_bytes(parquet_bytes(synthetic_history(pools[0]), pools[0]))
        settings = load_settings(data_dir=folder / "data", market="replay", replay_history=history)
    else:
        settings = load_settings(data_dir=folder / "data", market="synthetic")
    grid = SweepGrid(pools, parse_arms("policy,2.5,5,10,20"), seed_list, episodes)
    s = episode_settings(settings, "run_bench", 1)
    _, context = asyncio.run(sweep_context(settings, grid, s, AgentState(), FakeClock()))
    return context, make_batches(grid.size, default_batch_size(grid.size, workers)), grid.size


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _ray_processes_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every process under this one (the local Ray: gcs,
    raylet, monitors, workers), by pid, with its role: ``worker`` (process title ``ray::…``)
    or ``ray`` (Ray's own). Empty without /proc."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    mine, out = {os.getpid()}, {}
    for _ in range(6):  # a few generations: driver -> raylet -> workers
        mine |= {pid for pid, parent in parents.items() if parent in mine}
    for pid in mine - {os.getpid()}:
        try:
            title = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        out[pid] = ("worker" if title.startswith(b"ray::") else "ray", cpu[pid])
    return out


def _cpu_between(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    used = {"worker": 0.0, "ray": 0.0}
    for pid, (role, seconds) in after.items():
        used[role] += seconds - before.get(pid, (role, 0.0))[1]
    return used


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--empty-tasks", type=int, default=200)
    parser.add_argument("--market", choices=("synthetic", "replay"), default="synthetic")
    args = parser.parse_args()
    configure_logging("warning")
    load_before = os.getloadavg()
    capacity_before, scaling_before = capacity()
    context, batches, total = build_batches(args.seeds, args.episodes, 2, args.market)
    shared_bytes = len(pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL))  # as ray.put
    print(
        f"grid: {total} evaluations on the {args.market} market in {len(batches)} tasks; "
        f"shared context {shared_bytes / 1e6:.2f} MB; load average {load_before}"
    )

    serial = SerialExecutor()
    ray_exec = RayExecutor(num_cpus=2)
    # Each run gets its own copy of the context, as each clmmd sweep builds its own: the
    # replayed market memoises what it works out per swap, and a copy warmed by an earlier
    # run (in this process, or pickled warm to the workers) would flatter that run.
    packed_context = pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL)

    def fresh() -> SweepContext:
        copy: SweepContext = pickle.loads(packed_context)
        return copy

    cold_started = time.perf_counter()
    ray_exec.run(fresh(), batches)  # cold: starts the workers and imports clmmd in them
    cold = time.perf_counter() - cold_started
    serial_walls, serial_cpu, ray_walls, ray_stats, ray_cpu = [], [], [], [], []
    for _ in range(args.repeats):
        first = serial.run(fresh(), batches)[1]
        serial_walls.append(first.wall_s)
        serial_cpu.append(first.task_cpu_s)
        this_run = fresh()
        before = _ray_processes_cpu()
        results, stats = ray_exec.run(this_run, batches)
        ray_cpu.append(_cpu_between(before, _ray_processes_cpu()))
        ray_walls.append(stats.wall_s)
        ray_stats.append(stats)
    last = serial.run(fresh(), batches)[1]
    serial_walls.append(last.wall_s)
    serial_cpu.append(last.task_cpu_s)
    assert sum(r.stop - r.start for r in results) == total
    result_bytes = sum(len(r.packed) for r in results)
    print(f"results: {result_bytes / 1e6:.2f} MB back, {result_bytes / total:.0f} B per evaluation")

    import ray

    # Empty slices through the same task and the same shared context as the grid's.
    noop = ray.remote(num_cpus=1)(ray_task)
    shared, empty = [ray.put(context)], SweepBatch(0, 0)
    ray.get([noop.remote(shared, empty) for _ in range(20)])
    started = time.perf_counter()
    ray.get([noop.remote(shared, empty) for _ in range(args.empty_tasks)])
    per_empty_task_ms = (time.perf_counter() - started) / args.empty_tasks * 1000.0
    ray_exec.shutdown()
    load_after = os.getloadavg()
    capacity_after, scaling_after = capacity()
    print(
        f"two busy processes got {capacity_before:.2f} cores before, {capacity_after:.2f} "
        f"after, and did {scaling_before:.2f}x / {scaling_after:.2f}x the work of one alone"
    )

    serial_s = statistics.fmean(serial_walls)
    ray_s = min(ray_walls)
    speedup = serial_s / ray_s
    best_index = min(range(len(ray_stats)), key=lambda i: ray_stats[i].wall_s)
    best = ray_stats[best_index]
    print(f"serial runs (s): {[round(x, 3) for x in serial_walls]}")
    print(
        f"ray runs (s): {[round(x, 3) for x in ray_walls]}; cold first run {cold:.2f} s; "
        f"ray.init {ray_exec.setup_s:.2f} s"
    )
    print(f"load average after: {load_after}")
    # How much of the machine each run got: CPU seconds per wall second. On a quiet 2-core
    # machine the serial run gets ~1 and the two workers ~2; less means others were running.
    serial_share = statistics.fmean(c / w for c, w in zip(serial_cpu, serial_walls, strict=True))
    best_share = max(s.task_cpu_s / s.wall_s for s in ray_stats)
    print(f"cores used: serial {serial_share:.2f}, Ray {best_share:.2f} (of 2)")
    # The same work in CPU seconds, whatever else ran: the serial run's against everything
    # the Ray run cost (its workers' whole processes, the head, Ray's own processes). With
    # two free cores and the work spread evenly, Ray would be 2 / that ratio times faster.
    serial_cpu_s = statistics.fmean(serial_cpu)
    cpu_rows = [
        (c["worker"], s.head_cpu_s, c["ray"]) for c, s in zip(ray_cpu, ray_stats, strict=True)
    ]
    worker_cpu, head_cpu, system_cpu = (
        statistics.fmean(col) for col in zip(*cpu_rows, strict=True)
    )
    task_cpu = statistics.fmean(s.task_cpu_s for s in ray_stats)
    ray_total_cpu = worker_cpu + head_cpu + system_cpu
    cpu_ratio = ray_total_cpu / serial_cpu_s
    overhead_cpu_ms = (ray_total_cpu - task_cpu) / best.tasks * 1000.0
    print(
        f"CPU seconds per run (mean of {args.repeats}): serial {serial_cpu_s:.3f}; Ray "
        f"{ray_total_cpu:.3f} = workers {worker_cpu:.3f} (in tasks {task_cpu:.3f}) + head "
        f"{head_cpu:.3f} + Ray's processes {system_cpu:.3f}; ratio {cpu_ratio:.3f}: "
        f"{2 / cpu_ratio:.2f}x on 2 free cores"
    )
    rows = [
        Row(
            name=f"sweep speed-up, Ray 2 workers vs serial ({total} evals)",
            figure=speedup,
            unit="x",
            target=">= 1.7x",
            ratio=speedup / TARGET,
            passed=speedup >= TARGET,
            note=f"serial {serial_s:.2f} s (mean of {len(serial_walls)}), Ray {ray_s:.2f} s "
            f"(best of {args.repeats}; mean {statistics.fmean(ray_walls):.2f} s, "
            f"{serial_s / statistics.fmean(ray_walls):.2f}x); cores used serial "
            f"{serial_share:.2f}, Ray {best_share:.2f}; "
            f"load {load_before[0]:.1f}->{load_after[0]:.1f}",
        ),
        Row(
            name="cores 2 busy processes got (speed-up ceiling)",
            figure=min(capacity_before, capacity_after),
            unit="cores",
            target="2 on a quiet machine",
            ratio=None,
            passed=None,
            note=f"before {capacity_before:.2f}, after {capacity_after:.2f}",
        ),
        Row(
            name="work 2 busy processes did vs 1 alone (speed-up ceiling)",
            figure=min(scaling_before, scaling_after),
            unit="x",
            target="2 on a quiet machine",
            ratio=None,
            passed=None,
            note=f"before {scaling_before:.2f}, after {scaling_after:.2f}",
        ),
        Row(
            name="sweep Ray CPU per serial CPU (same grid)",
            figure=cpu_ratio,
            unit="x",
            target="-",
            ratio=None,
            passed=None,
            note=f"Ray {ray_total_cpu:.2f} CPU s (workers {worker_cpu:.2f}, head {head_cpu:.2f}, "
            f"Ray's processes {system_cpu:.2f}) vs serial {serial_cpu_s:.2f}: "
            f"{2 / cpu_ratio:.2f}x on 2 free cores",
        ),
        Row(
            name="sweep Ray overhead per task (grid, wall)",
            figure=best.overhead_per_task_ms,
            unit="ms",
            target="-",
            ratio=None,
            passed=None,
            note=f"{best.tasks} tasks of ~{total // best.tasks} evals; "
            f"compute {best.task_compute_s:.2f} s",
        ),
        Row(
            name="sweep Ray overhead per task (grid, CPU)",
            figure=overhead_cpu_ms,
            unit="ms",
            target="-",
            ratio=None,
            passed=None,
            note="Ray's CPU seconds beyond the tasks' own, per task",
        ),
        Row(
            name="sweep Ray overhead per empty task",
            figure=per_empty_task_ms,
            unit="ms",
            target="-",
            ratio=None,
            passed=None,
            note=f"{args.empty_tasks} empty tasks on 2 workers",
        ),
        Row(
            name="sweep serial evaluations per second",
            figure=total / serial_s,
            unit="ev/s",
            target="-",
            ratio=None,
            passed=None,
        ),
    ]
    if args.market == "replay":
        for row in rows:
            row.name = row.name.replace("sweep", "sweep (replay)", 1)
    print_table(rows)
    settings = {
        "seeds": args.seeds,
        "episodes": args.episodes,
        "repeats": args.repeats,
        "empty_tasks": args.empty_tasks,
        "ray_workers": 2,
        "market": args.market,
    }
    save("sweep_speed" if args.market == "synthetic" else "sweep_speed_replay", rows, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
