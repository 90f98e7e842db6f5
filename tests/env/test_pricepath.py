"""Tests for env.pricepath: determinism, shape, and the statistics it promises."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clmmd.env.pricepath import MINUTES_PER_DAY, price_path, step_count, volume_series


def test_step_count_rounds_up_to_whole_steps() -> None:
    assert step_count(24.0, 5.0) == 288
    assert step_count(1.0, 7.0) == 9
    assert step_count(0.01, 5.0) == 1


@pytest.mark.parametrize(
    ("hours", "minutes"), [(0.0, 5.0), (-1.0, 5.0), (math.nan, 5.0), (1.0, 0.0)]
)
def test_step_count_rejects_bad_durations(hours: float, minutes: float) -> None:
    with pytest.raises(ValueError, match="must be finite and > 0"):
        step_count(hours, minutes)


def test_same_seed_same_arrays() -> None:
    a = price_path(7, 3000.0, 0.05, 24.0)
    b = price_path(7, 3000.0, 0.05, 24.0)
    assert np.array_equal(a, b)
    assert np.array_equal(volume_series(7, 1e8, 288), volume_series(7, 1e8, 288))


def test_different_seeds_different_arrays() -> None:
    assert not np.array_equal(price_path(1, 3000.0, 0.05, 24.0), price_path(2, 3000.0, 0.05, 24.0))
    assert not np.array_equal(volume_series(1, 1e8, 288), volume_series(2, 1e8, 288))


def test_path_starts_at_start_price_with_one_point_per_step_boundary() -> None:
    path = price_path(3, 2500.0, 0.04, 6.0, step_minutes=10.0)
    assert len(path) == step_count(6.0, 10.0) + 1 == 37
    assert path[0] == 2500.0
    assert np.all(path > 0)


def test_zero_volatility_is_flat() -> None:
    path = price_path(11, 1234.5, 0.0, 24.0)
    assert np.all(path == 1234.5)


def test_empirical_volatility_matches_request() -> None:
    vol = 0.05
    path = price_path(2024, 3000.0, vol, 24.0 * 365)  # ~105k five-minute steps
    log_returns = np.diff(np.log(path))
    steps_per_day = MINUTES_PER_DAY / 5.0
    assert float(np.std(log_returns)) * math.sqrt(steps_per_day) == pytest.approx(vol, rel=0.02)


def test_zero_drift_keeps_expected_price_at_start() -> None:
    finals = np.array([price_path(seed, 100.0, 0.04, 24.0)[-1] for seed in range(2000)])
    # Std of one final price is ~4 %, so the mean of 2000 has a standard error of ~0.09 %.
    assert float(finals.mean()) == pytest.approx(100.0, rel=0.005)


def test_volume_totals_match_daily_rate() -> None:
    days = 100
    volumes = volume_series(5, 2.4e8, days * 288)
    assert np.all(volumes > 0)
    assert float(volumes.sum()) == pytest.approx(2.4e8 * days, rel=0.01)


def test_volume_noise_is_deterministic_and_varies() -> None:
    volumes = volume_series(5, 1e8, 288, noise=0.3)
    assert float(np.std(volumes)) > 0
    flat = volume_series(5, 1e8, 288, noise=0.0)
    assert flat == pytest.approx(np.full(288, 1e8 / 288))


def test_volume_stream_is_independent_of_price_stream() -> None:
    steps = 20_000
    price_shocks = np.diff(np.log(price_path(9, 100.0, 0.05, steps * 5 / 60)))
    volume_shocks = np.log(volume_series(9, 1e8, steps))
    assert abs(float(np.corrcoef(price_shocks, volume_shocks)[0, 1])) < 0.05


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed": -1}, "seed"),
        ({"start_price": 0.0}, "start_price"),
        ({"start_price": math.inf}, "start_price"),
        ({"volatility_daily": -0.1}, "volatility_daily"),
        ({"volatility_daily": math.nan}, "volatility_daily"),
        ({"horizon_hours": 0.0}, "horizon_hours"),
    ],
)
def test_price_path_rejects_bad_inputs(kwargs: dict[str, float], field: str) -> None:
    args: dict[str, float] = {
        "seed": 1,
        "start_price": 100.0,
        "volatility_daily": 0.04,
        "horizon_hours": 24.0,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        price_path(
            int(args["seed"]), args["start_price"], args["volatility_daily"], args["horizon_hours"]
        )


def test_volume_series_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="volume_usd_per_day"):
        volume_series(1, -5.0, 10)
    with pytest.raises(ValueError, match="steps"):
        volume_series(1, 1e8, 0)


@pytest.mark.parametrize("seed", [0, 1, 5, 2**31 - 1, 2**63 + 12345])
def test_volume_stream_is_numpys_jumped_stream_of_the_seed(seed: int) -> None:
    """The volume noise is drawn from ``PCG64(seed).jumped()``: same draws for the same seed
    as in earlier versions, whichever way the jump is computed."""
    rng = np.random.Generator(np.random.PCG64(seed).jumped())
    expected = 10.0 * np.exp(0.3 * rng.standard_normal(50) - 0.5 * 0.3**2)
    assert np.array_equal(volume_series(seed, 2880.0, 50, 5.0, 0.3), expected)
