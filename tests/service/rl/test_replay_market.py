"""The Gymnasium environments on a replayed history (``market="replay", history=PATH``)."""

from __future__ import annotations

import copy
import csv
import math
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import clmmd.service.rl  # noqa: F401  (registers the ids)
from clmmd.agent.proposer import centred_range
from clmmd.env.base import KNOWN_POOLS, PoolSpec
from clmmd.env.history import HistoryError, SwapHistory, make_history
from clmmd.env.history_io import parquet_bytes, write_csv
from clmmd.env.pricing import position_value_usd, raw_price_from_usd, token_usd_prices
from clmmd.env.replay import ReplayMarket
from clmmd.env.replay_fees import LpPosition
from clmmd.env.uniswap_math import get_sqrt_ratio_at_tick, price_to_tick, usable_tick_bounds
from clmmd.env.v3_pool import V3Pool
from clmmd.service.rl.lp_env import UniswapV3LPEnv
from clmmd.service.rl.registration import ENV_IDS
from clmmd.service.rl.replay_market import ReplayMarketSource

POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]  # USDC-WETH 0.05 %
START = 1_714_521_600
GAP_S = 60  # one swap a minute
DAY_SWAPS = 86_400 // GAP_S


def branching_history(
    pool: PoolSpec, swaps: int, seed: int, *, branch_after: int | None = None, branch_seed: int = 0
) -> SwapHistory:
    """``swaps`` Swap events of a V3Pool, one a minute from START, random sizes and directions
    from ``seed``; from the first event after ``branch_after`` (Unix seconds) on, the trades
    come from ``branch_seed`` instead: two histories equal up to that moment, then different."""
    centre = price_to_tick(raw_price_from_usd(pool, pool.reference_price_usd))
    v3 = V3Pool(get_sqrt_ratio_at_tick(centre), pool.fee_pips, pool.tick_spacing)
    low, high = usable_tick_bounds(pool.tick_spacing)
    v3.mint("full", low, high, 10**18)
    spacing = pool.tick_spacing
    v3.mint(
        "near", (centre // spacing - 200) * spacing, (centre // spacing + 200) * spacing, 10**19
    )
    usd0, usd1 = token_usd_prices(pool, pool.reference_price_usd)
    rng = np.random.Generator(np.random.PCG64(seed))
    columns: list[list[int]] = [[] for _ in range(8)]
    for i in range(swaps):
        time = START + GAP_S * i
        if branch_after is not None and time > branch_after and rng is not None:
            rng, branch_after = np.random.Generator(np.random.PCG64(branch_seed)), None
        zero_for_one = bool(rng.random() < 0.5 + (v3.tick - centre) / (4000.0 * spacing))
        usd = 10.0 if i == 0 else float(5_000.0 * np.exp(1.5 * rng.standard_normal()))
        amount = (
            int(usd / usd0 * 10**pool.decimals0)
            if zero_for_one
            else int(usd / usd1 * 10**pool.decimals1)
        )
        event = v3.swap(zero_for_one, max(1, amount))
        values = (time, i, 0, event.amount0, event.amount1, event.sqrt_price_x96, event.liquidity)
        for column, value in zip(columns, (*values, event.tick), strict=True):
            column.append(value)
    return make_history(*columns)


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "swaps.parquet"
    path.write_bytes(parquet_bytes(branching_history(POOL, 3 * DAY_SWAPS, seed=1), POOL))
    return path


def _rollout(env: Any, seed: int | None, actions: list[Any]) -> list[Any]:
    observation, info = env.reset(seed=seed)
    trace: list[Any] = [observation.tolist(), info]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        trace.append((observation.tolist(), reward, terminated, truncated, info))
        if terminated:
            break
    return trace


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_check_env_passes_on_a_replayed_history(env_id: str, history_file: Path) -> None:
    env = gym.make(env_id, market="replay", history=history_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_same_seed_same_trajectory_on_a_replayed_history(env_id: str, history_file: Path) -> None:
    first = gym.make(env_id, market="replay", history=str(history_file))
    second = gym.make(env_id, market="replay", history=history_file)
    first.action_space.seed(3)
    actions = [first.action_space.sample() for _ in range(24)]
    assert _rollout(first, 5, actions) == _rollout(second, 5, actions)
    assert _rollout(first, None, actions) == _rollout(second, None, actions)
    assert _rollout(first, 6, actions) != _rollout(second, 5, actions)


def test_windows_are_drawn_from_the_envs_random_stream_and_cover_the_horizon(
    history_file: Path,
) -> None:
    env = UniswapV3LPEnv(market="replay", history=history_file, horizon_hours=12)
    source = env.source
    assert isinstance(source, ReplayMarketSource)
    market = source.market
    starts = set()
    for seed in range(8):
        env.reset(seed=seed)
        window = source.window
        assert window is not None
        assert market.first_time <= window.start_time
        assert window.end_time == window.start_time + 12 * 3600 <= market.last_time
        assert env.episode is not None and env.episode.market.steps == 12 * 12
        starts.add(window.start_time)
    assert len(starts) == 8


def test_observations_never_read_swaps_after_now() -> None:
    """Two histories equal up to a moment inside the episode, different after it: every
    observation and reward up to that moment is the same on both, later ones are not."""
    swaps, seed = 2 * DAY_SWAPS, 4
    base = ReplayMarket(branching_history(POOL, swaps, seed=2), POOL)
    window = base.random_window(_window_seed(seed), 24.0)
    cut_decisions = 7
    cut = window.start_time + cut_decisions * 3600  # events after this moment differ
    traces = []
    for branch_seed in (10, 11):
        history = branching_history(POOL, swaps, seed=2, branch_after=cut, branch_seed=branch_seed)
        env = UniswapV3LPEnv(market_source=ReplayMarketSource(ReplayMarket(history, POOL)))
        observation, _ = env.reset(seed=seed)
        assert env.source.window == window  # type: ignore[attr-defined]
        trace = [observation.tolist()]
        for step in range(env.decisions):
            observation, reward, *_ = env.step(3 if step in (0, 9) else 0)
            trace.append([*observation.tolist(), reward])
        traces.append(trace)
    a, b = traces
    assert a[: cut_decisions + 1] == b[: cut_decisions + 1]
    assert a[cut_decisions + 1 :] != b[cut_decisions + 1 :]


def _window_seed(reset_seed: int) -> int:
    """The window seed ``reset(seed=reset_seed)`` draws (the env's first draw)."""
    rng, _ = gym.utils.seeding.np_random(reset_seed)
    return int(rng.integers(0, 2**63 - 1))


def test_holding_one_range_earns_the_replays_fees_for_it(history_file: Path) -> None:
    env = UniswapV3LPEnv(market="replay", history=history_file)
    env.reset(seed=9)
    episode, source = env.episode, env.source
    assert episode is not None and isinstance(source, ReplayMarketSource)
    width = env.widths[1]
    ticks = centred_range(env.pool, episode.price_usd, width)
    terminated, action = False, env.action_for_width(width)
    while not terminated:
        _, _, terminated, _, info = env.step(action)
        action = 0
    window = source.window
    assert window is not None
    liquidity = int(episode._liquidity)
    fees = source.market.fees(LpPosition(*ticks, liquidity), window, "exact")
    assert fees.swaps_in_range > 0
    # The episode values each hour's fees at that hour's end price: between the whole window's
    # fees valued at the lowest and at the highest price of the window.
    prices = episode.market.prices_usd
    values = [position_value_usd(POOL, fees.fee0, fees.fee1, p) for p in (min(prices), max(prices))]
    assert min(values) * (1 - 1e-9) <= info["fees_usd"] <= max(values) * (1 + 1e-9)
    assert info["fees_usd"] > 0


def test_the_observation_reads_the_replay_and_the_day_before_it(history_file: Path) -> None:
    env = UniswapV3LPEnv(market="replay", history=history_file)
    env.reset(seed=2)
    episode, source = env.episode, env.source
    assert episode is not None and isinstance(source, ReplayMarketSource)
    window = source.window
    assert window is not None
    market = source.market
    assert episode.price_usd == market.price_usd(window.start)
    inputs = episode.market.inputs
    day_before = market.history.between(window.start_time - 86_399, window.start_time + 1)
    if window.start_time - market.first_time >= 86_400:
        traded = sum(abs(v) for v in day_before.amount0) / 10**POOL.decimals0
        assert inputs.volume_usd_per_day == pytest.approx(traded, rel=1e-9)
    assert 0 < inputs.volatility_daily < 1
    assert "gas_price_gwei" in inputs.defaults_used
    assert inputs.eth_price_usd == market.price_usd(window.start)  # the pool's own WETH price
    assert math.isfinite(inputs.active_liquidity_usd) and inputs.active_liquidity_usd > 0


# -- bad input: one ValueError naming the field or the value ---------------------------------


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_replay_without_history_names_the_missing_field(env_id: str) -> None:
    with pytest.raises(ValueError, match=r"market='replay' needs history=PATH"):
        gym.make(env_id, market="replay")


def test_unknown_market_name_is_named() -> None:
    with pytest.raises(ValueError, match=r"market='replayed': unknown market"):
        gym.make("clmmd/UniswapV3LP-v0", market="replayed")
    with pytest.raises(ValueError, match=r"market=7: unknown market"):
        gym.make("clmmd/UniswapV3LP-v0", market=7)
    with pytest.raises(ValueError, match=r"market: unknown field\(s\) 'vol'"):
        gym.make("clmmd/UniswapV3LP-v0", market={"vol": 0.02})


def test_history_without_replay_market_is_refused(history_file: Path) -> None:
    with pytest.raises(ValueError, match=r"history=.* is read by market='replay' only"):
        gym.make("clmmd/UniswapV3LP-v0", history=history_file)


def test_history_file_missing_a_column_names_it(tmp_path: Path) -> None:
    full = tmp_path / "full.csv"
    write_csv(full, branching_history(POOL, 50, seed=1))
    with full.open(newline="") as f:
        rows = list(csv.reader(f))
    drop = rows[0].index("sqrt_price_x96")
    broken = tmp_path / "broken.csv"
    with broken.open("w", newline="") as f:
        csv.writer(f).writerows([c for k, c in enumerate(row) if k != drop] for row in rows)
    with pytest.raises(HistoryError, match=r"broken.csv: missing column\(s\) sqrt_price_x96"):
        gym.make("clmmd/UniswapV3LP-v0", market="replay", history=broken, pool=POOL.address)


def test_history_file_pool_must_be_known_or_agree(tmp_path: Path, history_file: Path) -> None:
    csv = tmp_path / "swaps.csv"
    write_csv(csv, branching_history(POOL, 50, seed=1))
    with pytest.raises(ValueError, match=r"history='.*swaps.csv' does not name its pool"):
        gym.make("clmmd/UniswapV3LP-v0", market="replay", history=csv)
    other = next(p for p in KNOWN_POOLS.values() if p.address != POOL.address)
    with pytest.raises(ValueError, match=rf"pool='{other.address}': .* is the history of"):
        gym.make("clmmd/UniswapV3LP-v0", market="replay", history=history_file, pool=other.address)
    with pytest.raises(HistoryError, match=r"history file .*nowhere.parquet: no such file"):
        gym.make("clmmd/UniswapV3LP-v0", market="replay", history=tmp_path / "nowhere.parquet")


def test_history_shorter_than_the_horizon_is_refused_at_make(history_file: Path) -> None:
    with pytest.raises(ValueError, match=r"horizon_hours=96: the history covers 72.0 h"):
        gym.make("clmmd/UniswapV3LP-v0", market="replay", history=history_file, horizon_hours=96)


def test_replay_episode_and_market_share_nothing_mutable(history_file: Path) -> None:
    env = UniswapV3LPEnv(market="replay", history=history_file)
    env.reset(seed=1)
    before = copy.deepcopy(env.source.market.history.sqrt_price_x96)  # type: ignore[attr-defined]
    for _ in range(env.decisions):
        env.step(2)
    assert env.source.market.history.sqrt_price_x96 == before  # type: ignore[attr-defined]
