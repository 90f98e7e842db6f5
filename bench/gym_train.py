"""The longer training run behind docs/agent.md's RL figures (needs the rl extra).

PPO and DQN (examples/train_ppo.py's hyper-parameters) on clmmd/UniswapV3LP-v0, CPU, one
torch thread. At each checkpoint the model is compared on the same held-out seeds
(1,000,000…) with three static policies: the ±5 % range (clmmd evaluate's baseline), the ±20 %
range and staying out; per comparison the paired difference with its 95 % interval. The
policy's first action per regime is counted at the end. Writes bench/results/gym_train.json
and, with ``--figure PATH``, a PNG of the learning curves.

    ../.venv/bin/python gym_train.py [--steps 200000] [--eval-episodes 500] [--figure PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from _common import RESULTS, ROOT, machine

import clmmd.service.rl  # noqa: F401  (registers the ids)
from clmmd.service.analysis.evaluation_stats import paired_difference
from clmmd.service.analysis.policy_evaluation import (
    HELD_OUT_FIRST_SEED,
    constant_policy,
    policy_return,
    static_return,
)

CHECKPOINTS = (10_000, 20_000, 50_000, 100_000, 200_000, 400_000)


def _example() -> Any:
    path = ROOT / "examples" / "train_ppo.py"
    spec = importlib.util.spec_from_file_location("train_ppo_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def references(episodes: int) -> dict[str, list[float]]:
    env = gym.make("clmmd/UniswapV3LP-v0")
    seeds = range(HELD_OUT_FIRST_SEED, HELD_OUT_FIRST_SEED + episodes)
    out = {
        "static ±5%": [static_return(env, s, 5.0) for s in seeds],
        "static ±20%": [static_return(env, s, 20.0) for s in seeds],
    }
    out["stay out"] = [policy_return(env, constant_policy(0), s)[0] for s in seeds]
    return out


def evaluate(model: Any, episodes: int) -> tuple[list[float], dict[str, Counter[int]], float]:
    """Returns per held-out episode, first actions per regime, mean rebalances per episode."""
    env = gym.make("clmmd/UniswapV3LP-v0")
    returns: list[float] = []
    firsts: dict[str, Counter[int]] = defaultdict(Counter)
    rebalances = 0
    for seed in range(HELD_OUT_FIRST_SEED, HELD_OUT_FIRST_SEED + episodes):
        value, first = policy_return(env, lambda o: model.predict(o, deterministic=True)[0], seed)
        returns.append(value)
        firsts[env.unwrapped.regime.key][int(first)] += 1
        rebalances += env.unwrapped.episode.rebalances
    return returns, firsts, rebalances / episodes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--eval-episodes", type=int, default=500)
    parser.add_argument("--algos", default="ppo,dqn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    example = _example()
    print(f"load average before: {os.getloadavg()}", flush=True)
    refs = references(args.eval_episodes)
    results: dict[str, Any] = {
        "settings": {
            "env": "clmmd/UniswapV3LP-v0 (defaults: 24 h, hourly decisions, sampled markets)",
            "eval_episodes": args.eval_episodes,
            "first_eval_seed": HELD_OUT_FIRST_SEED,
            "train_seed": args.seed,
            "torch_threads": 1,
        },
        "references": {k: float(np.mean(v)) for k, v in refs.items()},
        "runs": {},
    }
    for algo in args.algos.split(","):
        env = gym.make("clmmd/UniswapV3LP-v0")
        model = example.make_model(algo, env, args.seed)
        done, curve, train_s = 0, [], 0.0
        firsts: dict[str, Counter[int]] = {}
        for checkpoint in (c for c in CHECKPOINTS if c <= args.steps):
            started = time.perf_counter()
            model.learn(total_timesteps=checkpoint - done, reset_num_timesteps=False)
            train_s += time.perf_counter() - started
            done = checkpoint
            returns, firsts, rebalances = evaluate(model, args.eval_episodes)
            point: dict[str, Any] = {"steps": checkpoint, "train_s": round(train_s, 1)}
            point["policy"] = float(np.mean(returns))
            point["rebalances_per_episode"] = rebalances
            for name, ref in refs.items():
                d = paired_difference(returns, ref)
                point[f"vs {name}"] = [d.mean, d.low, d.high]
            curve.append(point)
            print(algo, json.dumps(point), flush=True)
        results["runs"][algo] = {
            "curve": curve,
            "first_actions_by_regime": {k: dict(sorted(v.items())) for k, v in firsts.items()},
        }
    results["load_average_after"] = os.getloadavg()
    results["machine"] = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gym_train.json").write_text(json.dumps(results, indent=2))
    if args.figure:
        _figure(results, args.figure)
    print(json.dumps(results["references"]))
    return 0


def _figure(results: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for algo, run in results["runs"].items():
        steps = [p["steps"] for p in run["curve"]]
        ax.plot(steps, [p["policy"] for p in run["curve"]], marker="o", label=algo.upper())
    for name, value in results["references"].items():
        ax.axhline(value, ls="--", lw=1, color="grey")
        ax.annotate(name, (0, value), xycoords=("axes fraction", "data"), fontsize=8, va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("training steps (hourly decisions)")
    ax.set_ylabel(f"mean return, {results['settings']['eval_episodes']} held-out episodes")
    ax.set_title("clmmd/UniswapV3LP-v0: trained policy vs static policies")
    ax.grid(True, color="#e4e4e4", lw=0.6)
    ax.legend()
    fig.savefig(path, format="png", metadata={"Software": None})


if __name__ == "__main__":
    sys.exit(main())
