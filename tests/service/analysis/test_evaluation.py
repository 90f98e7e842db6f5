"""Evaluation: learned policy vs static baseline on the same seeded price paths."""

from __future__ import annotations

import itertools
import random
import statistics
from pathlib import Path

import orjson
import pytest

from clmmd.agent.persistence import (
    PersistentAgent,
    StateFormatError,
    default_state_path,
    read_state,
)
from clmmd.agent.policy import DEFAULT_WIDTHS
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import FakeClock
from clmmd.artifacts.layout import RunLayout
from clmmd.env.base import KNOWN_POOLS
from clmmd.env.mock import MockClmmEnv
from clmmd.env.pricing import ticks_to_usd_range
from clmmd.service.analysis.evaluation import (
    METRIC_SPECS,
    METRICS,
    baseline_ticks,
    evaluate,
    format_report,
    mean_interval,
    paired_difference,
    t_quantile_975,
    train_then_evaluate,
)
from clmmd.service.config import load_settings
from clmmd.service.runs.campaign import run_campaign
from clmmd.service.runs.warmup import MockMarketPhases
from clmmd.service.wiring import open_intel


async def test_same_seed_gives_the_same_report(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, durable_writes=False)
    first = await evaluate(settings, episodes=12, seed=7, clock=FakeClock())
    second = await evaluate(settings, episodes=12, seed=7, clock=FakeClock())
    other = await evaluate(settings, episodes=12, seed=8, clock=FakeClock())
    assert first == second
    assert format_report(first) == format_report(second)
    assert [p.seed for p in first.episodes] != [p.seed for p in other.episodes]
    assert first.learned["reward"] != other.learned["reward"]


async def test_both_arms_see_the_price_paths_of_the_campaign_with_that_seed(
    tmp_path: Path,
) -> None:
    seed, count = 20, 10  # three phases of the mock market, in three regimes
    settings = load_settings(data_dir=tmp_path / "data", seed=seed, durable_writes=False)
    clock = FakeClock()
    stack = open_intel(settings, clock)
    try:
        campaign = await run_campaign(
            settings,
            env=MockClmmEnv(),
            intel=stack.intel,
            episodes=count,
            clock=clock,
            phases=MockMarketPhases(stack.cache, stack.registry, clock, list(settings.pools), seed),
        )
    finally:
        stack.close()
    layout = RunLayout(settings.data_dir, campaign.run_id)
    results = [orjson.loads((d / "result.json").read_bytes()) for d in layout.episode_dirs()]
    metadata = [orjson.loads((d / "metadata.json").read_bytes()) for d in layout.episode_dirs()]

    report = await evaluate(settings, episodes=count, seed=seed, clock=FakeClock())

    assert [p.seed for p in report.episodes] == [m["seed"] for m in metadata]
    assert [p.regime_key for p in report.episodes] == [m["regime_key"] for m in metadata]
    assert len(report.regimes) == 3
    for pair, result in zip(report.episodes, results, strict=True):
        simulation = result["simulation"]
        for arm in (pair.learned, pair.baseline):
            assert arm.start_price_usd == simulation["start_price_usd"]
            assert arm.end_price_usd == simulation["end_price_usd"]
        # Gas depends on the market inputs only: same inputs as the campaign saw.
        assert pair.learned.values["gas_cost_usd"] == result["gas_cost_usd"]
        assert pair.baseline.values["gas_cost_usd"] == result["gas_cost_usd"]
    # Different episodes do get different paths (the test above would pass on one path).
    assert len({p.learned.end_price_usd for p in report.episodes}) == count


async def test_the_learned_arm_is_the_greedy_choice_of_the_state(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, durable_writes=False)
    probe = await evaluate(settings, episodes=10, seed=4, clock=FakeClock())
    assert probe.learned_widths == {DEFAULT_WIDTHS[0]: 10}  # prior: every arm ties, first wins
    assert len(probe.regimes) >= 2
    state = AgentState()
    for regime in probe.regimes:
        for _ in range(5):
            state = state.with_reward(regime, 1000, 0.8).with_reward(regime, 200, 0)

    report = await evaluate(settings, episodes=10, seed=4, state=state, clock=FakeClock())

    assert report.learned_widths == {1000: 10}
    assert report.agent_version == state.agent_version


@pytest.mark.parametrize("address", sorted(KNOWN_POOLS))
@pytest.mark.parametrize("width_pct", [1.0, 5.0, 20.0])
def test_the_baseline_covers_plus_minus_x_percent(address: str, width_pct: float) -> None:
    pool = KNOWN_POOLS[address]
    price = 2950.0
    lower, upper = baseline_ticks(pool, price, width_pct)
    low_usd, high_usd = ticks_to_usd_range(pool, lower, upper)
    share = width_pct / 100
    assert low_usd <= price * (1 - share) and high_usd >= price * (1 + share)
    # ... and not much more: at most one tick spacing (plus a tick) wider on each side.
    slack = 1.0001 ** (pool.tick_spacing + 1)
    assert low_usd * slack >= price * (1 - share) and high_usd <= price * (1 + share) * slack


@pytest.mark.parametrize("width_pct", [0.0, -1.0, 100.0])
def test_a_baseline_width_outside_0_100_is_refused(width_pct: float) -> None:
    pool = next(iter(KNOWN_POOLS.values()))
    with pytest.raises(ValueError, match="baseline width"):
        baseline_ticks(pool, 3000.0, width_pct)


def test_the_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = random.Random(1)
    for n in (4, 12, 60):
        trials = 2000
        hits = 0
        for _ in range(trials):
            iv = mean_interval([rng.gauss(3.0, 2.0) for _ in range(n)])
            assert iv.low is not None and iv.high is not None
            hits += iv.low <= 3.0 <= iv.high
        # Binomial sd at 95 % over 2000 trials is ~0.5 %: allow 2 points either way.
        assert 0.93 <= hits / trials <= 0.97, (n, hits / trials)


def test_t_quantiles_fall_towards_the_normal_one_without_a_jump() -> None:
    values = [t_quantile_975(df) for df in range(1, 400)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert abs(t_quantile_975(30) - t_quantile_975(31)) < 0.005
    assert 1.96 < values[-1] < 1.97
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_one_value_has_no_interval_and_none_is_an_error() -> None:
    single = mean_interval([2.5])
    assert (single.mean, single.low, single.high, single.excludes_zero) == (2.5, None, None, False)
    with pytest.raises(ValueError):
        mean_interval([])


async def test_the_paired_difference_is_per_episode(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, durable_writes=False)
    report = await evaluate(settings, episodes=15, seed=3, clock=FakeClock())
    for metric in METRICS:
        diffs = [p.learned.values[metric] - p.baseline.values[metric] for p in report.episodes]
        # Statistics run on values rounded to the metric's resolution (a cent, 0.01 %).
        step = METRIC_SPECS[metric].resolution
        assert report.difference[metric].mean == pytest.approx(statistics.fmean(diffs), abs=step)
        assert report.learned[metric].n == report.baseline[metric].n == 15
    text = format_report(report)
    for metric in METRICS:
        assert metric in text
    assert "±5 %" in text and "episodes 1..15" in text


async def test_evaluate_reads_the_saved_state_when_none_is_given(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, durable_writes=False)
    clock = FakeClock()
    agent = PersistentAgent(default_state_path(tmp_path), clock, durable=False)
    await agent.learn("gas=low|vol=mid|flow=clean", 500, 0.3)
    report = await evaluate(settings, episodes=2, seed=1, clock=clock)
    assert report.agent_version == agent.state.agent_version

    default_state_path(tmp_path).write_bytes(b"{broken")
    with pytest.raises(StateFormatError):
        await evaluate(settings, episodes=2, seed=1, clock=clock)


async def test_train_then_evaluate_learns_into_the_state_file_and_holds_out_paths(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", durable_writes=False)
    assert settings.learn_from_mock is False  # the function must turn it on itself
    clock = FakeClock()

    done = await train_then_evaluate(
        settings, train_episodes=24, eval_episodes=10, seed=13, clock=clock
    )

    layout = RunLayout(settings.data_dir, done.campaign.run_id)
    metadata = [orjson.loads((d / "metadata.json").read_bytes()) for d in layout.episode_dirs()]
    assert len(metadata) == 24
    assert all(m["learning_update_applied"] for m in metadata), metadata[0]
    saved = read_state(done.state_path)
    assert saved is not None and saved.version == 24
    assert done.evaluation.agent_version == saved.agent_version
    # Evaluation episodes follow the training ones: no path is shared.
    assert done.evaluation.first_index == 25
    assert not {p.seed for p in done.evaluation.episodes} & {m["seed"] for m in metadata}

    # A second round continues from the saved state rather than starting over.
    again = await train_then_evaluate(
        settings, train_episodes=5, eval_episodes=2, seed=14, clock=clock
    )
    resumed = read_state(again.state_path)
    assert resumed is not None and resumed.version == 29


def test_an_interval_never_leaves_the_metrics_bounds() -> None:
    # Mostly 100 % in range with a few misses: the plain t interval would pass 100.
    values = [100.0] * 17 + [85.0, 92.0, 97.0]
    plain = mean_interval(values)
    assert plain.high is not None and plain.high > 100.0
    bounded = mean_interval(values, resolution=0.01, bounds=(0.0, 100.0))
    assert bounded.high == 100.0 and bounded.clipped
    assert bounded.low == plain.low and bounded.mean == pytest.approx(plain.mean)


def test_no_spread_means_a_degenerate_interval_that_is_never_significant() -> None:
    same = mean_interval([64.81] * 20, resolution=0.01)
    assert same.degenerate and same.low == same.high == same.mean == 64.81
    assert not same.excludes_zero
    # Float noise and sub-cent differences (the "-0.00 [-0.00, -0.00] *" seen before) are zero.
    noise = paired_difference(
        [1e-13 * i for i in range(20)], [-2e-4 * i for i in range(20)], resolution=0.01
    )
    assert noise.degenerate and noise.mean == 0.0 and not noise.excludes_zero
    without_rounding = paired_difference(
        [1e-13 * i for i in range(20)], [-2e-4 * i for i in range(20)]
    )
    assert without_rounding.excludes_zero  # what the old report starred
    # A constant non-zero difference has no spread either: shown as such, not starred.
    constant = paired_difference([5.0] * 8, [3.0] * 8, resolution=0.01)
    assert constant.degenerate and constant.mean == 2.0 and not constant.excludes_zero


async def test_the_report_shows_bounds_degenerate_cells_and_the_decomposition(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path, durable_writes=False)
    report = await evaluate(settings, episodes=20, seed=3, clock=FakeClock())
    for arm in (report.learned, report.baseline):
        tir = arm["time_in_range_pct"]
        assert tir.high is None or tir.high <= 100.0
        assert tir.low is None or tir.low >= 0.0
    text = format_report(report)
    gas_line = next(x for x in text.splitlines() if x.startswith("gas_cost_usd"))
    # The same gas for both arms of every episode: no interval, no star.
    assert "(all 20 equal)" in gas_line and not gas_line.endswith("*")
    for label in ("learned", "baseline", "difference"):
        section = text.split("PnL decomposition")[1]
        line = next(x for x in section.splitlines() if x.startswith(f"  {label} "))
        pnl, terms = line.split("=")[0].split()[-1], line.split("=")[1]
        numbers = [float(t.strip("()").replace(",", "")) for t in terms.split() if t[-1].isdigit()]
        hodl, il, fees, gas = numbers
        assert hodl - il + fees - gas == pytest.approx(float(pnl.replace(",", "")), abs=0.03)
