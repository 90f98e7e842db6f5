"""What learning buys: the table of docs/agent.md ("What the evaluation showed").

For each seed: the untrained policy (the prior) against a static ±5 % range on the held-out
episodes 301–600, then ``train_then_evaluate`` (300 mock training episodes with
LEARN_FROM_MOCK, one episode worker, the mock market moving through its seeded regimes) and the
trained policy against static ±5, ±10 and ±20 % ranges on the same held-out episodes. Prints a
markdown table and, for the first seed, the full ``clmmd evaluate`` report.

    python bench/agent_eval.py [--seeds 5 11 23 42] [--train 300] [--eval 300]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from _common import ROOT  # noqa: F401  (puts the repository on sys.path)

from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import FakeClock
from clmmd.service.analysis.evaluation import evaluate, format_report, train_then_evaluate
from clmmd.service.analysis.evaluation_stats import Interval
from clmmd.service.config import load_settings
from clmmd.service.logging import configure_logging


def _cell(iv: Interval) -> str:
    if iv.low is None or iv.high is None or iv.degenerate:
        return f"{iv.mean:+.3f}"
    return f"{iv.mean:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"


async def one_seed(seed: int, train: int, held_out: int, root: Path) -> tuple[str, str]:
    settings = load_settings(data_dir=root / f"seed{seed}", episode_workers=1, durable_writes=False)
    clock = FakeClock()
    first = train + 1
    untrained = await evaluate(
        settings, episodes=held_out, seed=seed, state=AgentState(), clock=clock, first_index=first
    )
    done = await train_then_evaluate(
        settings, train_episodes=train, eval_episodes=held_out, seed=seed, clock=clock
    )
    trained = done.evaluation
    wider = {}
    for pct in (10.0, 20.0):
        wider[pct] = await evaluate(
            settings,
            episodes=held_out,
            seed=seed,
            baseline_width_pct=pct,
            state=None,  # the state train_then_evaluate saved
            clock=clock,
            first_index=first,
        )
    picks = "; ".join(
        f"{regime.replace('gas=', '').replace('|vol=', '/').replace('|flow=', '/')}: "
        + ", ".join(f"{w}×{n}" for w, n in widths.items())
        for regime, widths in trained.learned_widths_by_regime().items()
    )
    row = (
        f"| {seed} | {len(trained.regimes)} | {_cell(untrained.difference['reward'])} | "
        f"{_cell(trained.difference['reward'])} | {_cell(wider[10.0].difference['reward'])} | "
        f"{_cell(wider[20.0].difference['reward'])} | {picks} |"
    )
    return row, format_report(trained)


async def main(seeds: list[int], train: int, held_out: int) -> None:
    configure_logging("warning", stream=open("/dev/null", "wb"))  # noqa: SIM115
    rows, first_report = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            row, report = await one_seed(seed, train, held_out, Path(tmp))
            rows.append(row)
            first_report = first_report or report
    print(
        f"train {train} episodes, evaluate episodes {train + 1}..{train + held_out}; reward "
        "difference learned − static, mean [95 % interval]\n"
    )
    print(
        "| seed | regimes | untrained − ±5 % | trained − ±5 % | trained − ±10 % | "
        "trained − ±20 % | trained picks by regime (gas/vol/flow: ticks×episodes) |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nseed {seeds[0]} in full:\n\n{first_report}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 11, 23, 42])
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--eval", type=int, default=300, dest="held_out")
    args = parser.parse_args()
    asyncio.run(main(args.seeds, args.train, args.held_out))
