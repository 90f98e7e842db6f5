"""The market of mock execution, from settings: the synthetic simulator or a replayed history.

``CLMMD_MARKET=synthetic`` (default) gives :class:`env.mock.MockClmmEnv`; ``replay`` gives
:class:`env.replay_env.ReplayClmmEnv` over the campaign pool's Swap history: the file named by
``CLMMD_REPLAY_HISTORY``, else every page stored in ``<data_dir>/history``. What is cheap to
check (the pool is known, the history exists) is checked here, so a missing history stops the
command with one line (exit 2); reading and preparing it happens on first use, in a worker
thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clmmd.env.base import PoolSpec, pool_by_address
from clmmd.env.history import HistoryError
from clmmd.env.mock import MockClmmEnv
from clmmd.env.replay import ReplayMarket
from clmmd.env.replay_env import ReplayClmmEnv
from clmmd.service.config import ConfigError, Settings

if TYPE_CHECKING:  # pyarrow is imported only where histories are read or written
    from clmmd.env.history_store import HistoryStore

MockEnv = MockClmmEnv | ReplayClmmEnv


def history_store(settings: Settings) -> HistoryStore:
    """``<data_dir>/history``."""
    from clmmd.env.history_store import HistoryStore

    return HistoryStore(settings.data_dir / "history", durable=settings.durable_writes)


def campaign_pool(settings: Settings) -> PoolSpec:
    try:
        return pool_by_address(settings.pools[0])
    except KeyError as exc:
        raise ConfigError(f"invalid configuration: CLMMD_POOLS: {exc.args[0]}") from None


def load_replay_market(settings: Settings, pool: PoolSpec) -> ReplayMarket:
    """Read the configured history and prepare it (blocking: run it in a worker thread)."""
    from clmmd.env.history_io import read_history
    from clmmd.env.history_store import DAY_S

    protocol = (settings.replay_fee_protocol, settings.replay_fee_protocol)
    if settings.replay_history is not None:
        history, described = read_history(settings.replay_history)
        if described is not None and described.address.lower() != pool.address.lower():
            raise HistoryError(
                f"{settings.replay_history} is the history of {described.address}, "
                f"not of the campaign's pool {pool.address}"
            )
        return ReplayMarket(history, pool, protocol)
    store = history_store(settings)
    days = store.stored_days(pool.address)
    history = store.load(pool.address, days[0], days[-1] + DAY_S - 1)
    return ReplayMarket(history, pool, protocol)


def check_replay_history(settings: Settings, pool: PoolSpec) -> None:
    """``ConfigError`` (one line) unless a history of ``pool`` is configured: the file
    ``CLMMD_REPLAY_HISTORY`` names exists, or ``<data_dir>/history`` holds days of the pool."""
    if settings.replay_history is not None:
        if not settings.replay_history.is_file():
            raise ConfigError(
                f"invalid configuration: CLMMD_REPLAY_HISTORY={str(settings.replay_history)!r}: "
                "no such file"
            )
    elif not history_store(settings).stored_days(pool.address):
        raise ConfigError(
            f"invalid configuration: CLMMD_MARKET='replay' but {settings.data_dir / 'history'} "
            f"holds no history of {pool.address}: fetch one (`clmmd history fetch --pool "
            f"{pool.address} --from ... --to ...`) or set CLMMD_REPLAY_HISTORY=FILE"
        )


def mock_env(settings: Settings) -> MockEnv:
    """The mock-execution environment of the configured market."""
    if settings.market == "synthetic":
        return MockClmmEnv()
    pool = campaign_pool(settings)
    check_replay_history(settings, pool)
    return ReplayClmmEnv(lambda: load_replay_market(settings, pool))
