"""Steps per second of the LP Gymnasium environments on the synthetic and the replayed market.

Random actions (seeded), resets included (one every 24 steps), through ``gymnasium.make``
(with its wrappers: passive checker, order enforcing) and on the bare environment. Target
(synthetic market): >= 20,000 steps/s. The best of ``--repeats`` runs counts (the machine is
shared: the best run is the one least disturbed by others); every run is printed.

The replayed market (``market="replay"``) runs on a pool-consistent synthetic history of
``--replay-swaps`` swaps (:mod:`clmmd.env.replay_synth`, about 13 s apart) written to a
temporary Parquet file; its steps replay every swap of the interval for the open range. No
target: reported only.

    ../.venv/bin/python gym_speed.py [--steps 200000] [--repeats 3] [--replay-steps 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from _common import Row, print_table, save

import clmmd.service.rl  # noqa: F401  (registers the ids)
from clmmd.env.base import DEFAULT_POOL_ADDRESS, pool_by_address
from clmmd.env.history_io import parquet_bytes
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history
from clmmd.service.rl.registration import CONTINUOUS_ID, DISCRETE_ID

TARGET = 20_000.0


def steps_per_second(env: Any, steps: int, seed: int = 0) -> tuple[float, float]:
    """(wall-clock, CPU-time) steps per second: CPU time leaves out waiting for a core."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return (
        steps / (time.perf_counter() - started),
        steps / (time.process_time() - cpu_started),
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replay-steps", type=int, default=20_000)
    parser.add_argument("--replay-swaps", type=int, default=50_000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    rows = []
    for env_id in (DISCRETE_ID, CONTINUOUS_ID):
        for label, make in (
            ("gym.make", lambda i=env_id: gym.make(i)),
            ("bare", lambda i=env_id: gym.make(i).unwrapped),
        ):
            measured = [steps_per_second(make(), args.steps, seed) for seed in range(args.repeats)]
            runs = [wall for wall, _ in measured]
            cpu = max(c for _, c in measured)
            print(f"{env_id} {label}: " + ", ".join(f"{r:,.0f}" for r in runs) + " steps/s")
            best = max(runs)
            rows.append(
                Row(
                    name=f"{env_id.split('/')[1]} {label}",
                    figure=best,
                    unit="st/s",
                    target=">= 20,000 st/s",
                    ratio=best / TARGET,
                    passed=best >= TARGET,
                    note=f"best of {args.repeats} x {args.steps:,} steps; "
                    f"median {float(np.median(runs)):,.0f}; per CPU second {cpu:,.0f}",
                )
            )
    rows.extend(replay_rows(args.replay_steps, args.replay_swaps, args.repeats))
    print(f"load average after: {os.getloadavg()}")
    print_table(rows)
    save(
        "gym_speed",
        rows,
        {
            "steps": args.steps,
            "repeats": args.repeats,
            "replay_steps": args.replay_steps,
            "replay_swaps": args.replay_swaps,
        },
    )
    return 0


def replay_rows(steps: int, swaps: int, repeats: int) -> list[Row]:
    """Both ids on ``market="replay"`` through ``gymnasium.make`` (reported, no target)."""
    pool = pool_by_address(DEFAULT_POOL_ADDRESS)
    history = synthetic_history(pool, SyntheticMarket(swaps=swaps, seed=1))
    days = (history.block_time[-1] - history.block_time[0]) / 86_400
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "swaps.parquet"
        path.write_bytes(parquet_bytes(history, pool))
        for env_id in (DISCRETE_ID, CONTINUOUS_ID):
            started = time.perf_counter()
            gym.make(env_id, market="replay", history=path)
            make_s = time.perf_counter() - started
            measured = [
                steps_per_second(gym.make(env_id, market="replay", history=path), steps, seed)
                for seed in range(repeats)
            ]
            runs = [wall for wall, _ in measured]
            cpu = max(c for _, c in measured)
            print(f"{env_id} replay: " + ", ".join(f"{r:,.0f}" for r in runs) + " steps/s")
            best = max(runs)
            rows.append(
                Row(
                    name=f"{env_id.split('/')[1]} replay",
                    figure=best,
                    unit="st/s",
                    target="-",
                    ratio=None,
                    passed=None,
                    note=f"best of {repeats} x {steps:,} steps; median "
                    f"{float(np.median(runs)):,.0f}; per CPU second {cpu:,.0f}; "
                    f"{swaps:,} swaps ({days:.1f} days), make {make_s:.2f} s",
                )
            )
    return rows


if __name__ == "__main__":
    sys.exit(main())
