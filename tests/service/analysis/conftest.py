"""Fixtures of the analysis tests: a replayable Swap history of the default pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from clmmd.env.base import KNOWN_POOLS
from clmmd.env.history_io import parquet_bytes
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history

REPLAY_POOL = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


@pytest.fixture(scope="session")
def replay_history_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About a week of USDC/WETH 0.05 % swaps (synthetic), as a Parquet history file."""
    path = tmp_path_factory.mktemp("replay") / "usdc-weth.parquet"
    market = SyntheticMarket(swaps=20_000, seconds_per_swap=30, seed=2)
    path.write_bytes(parquet_bytes(synthetic_history(REPLAY_POOL, market), REPLAY_POOL))
    return path
