"""``clmmd sweep``: the grid of (pool, arm, seed) evaluations, as Ray tasks or in-process."""

from __future__ import annotations

import asyncio
import sys

from clmmd.artifacts.base.clock import SystemClock
from clmmd.env.base import pool_by_address
from clmmd.service.analysis.sweep_grid import parse_arms, parse_seeds
from clmmd.service.config import Settings


def _err(message: str) -> int:
    print(f"clmmd sweep: {message}", file=sys.stderr)
    return 2


def sweep(
    settings: Settings,
    *,
    pools: str,
    widths: str,
    seeds: str,
    episodes: int,
    ray_address: str | None,
    serial: bool,
    workers: int | None,
    batch: int | None,
) -> int:
    """Run the sweep and print its table; 2 for bad input or a missing scale extra."""
    from clmmd.service.analysis.sweep import SweepGrid, format_table, run_sweep
    from clmmd.service.analysis.sweep_exec import BatchExecutor, RayExecutor, SerialExecutor

    try:
        pool_specs = tuple(pool_by_address(p.strip()) for p in pools.split(","))
        grid = SweepGrid(pool_specs, parse_arms(widths), parse_seeds(seeds), episodes)
    except KeyError as exc:  # its str() adds quotes around the message
        return _err(str(exc.args[0]))
    except ValueError as exc:
        return _err(str(exc))
    if workers is not None and (serial or ray_address):
        return _err("--workers sizes the local Ray: not with --serial or --ray-address")
    executor: BatchExecutor
    if serial:
        executor = SerialExecutor()
    else:
        try:
            import ray  # noqa: F401
        except ImportError:
            return _err("Ray is not installed: pip install 'clmmd[scale]', or run with --serial")
        executor = RayExecutor(ray_address, workers)
    try:
        result = asyncio.run(run_sweep(settings, grid, executor, SystemClock(), batch_size=batch))
    finally:
        if isinstance(executor, RayExecutor):
            executor.shutdown()
    print(format_table(result))
    return 0
