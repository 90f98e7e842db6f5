"""Warming the intel cache with mock data before (and during) a mock campaign.

Mock intel is local and instant, so a campaign can start from a fresh snapshot. It is seeded
by the campaign seed (not the hour), and every key is rewritten, so the same seed gives the
same intel and therefore the same proposals and results whenever it runs.

The market does not stay in one regime: a mock campaign moves through **phases** of
:data:`REGIME_PHASE_EPISODES` episodes, and :func:`market_state` draws each phase's regime
(gas level, volatility bucket, toxic or clean flow) from a seeded chain that sometimes stays
where it was and otherwise jumps, so a 20-episode campaign sees several regimes and the agent's
choice per regime shows. Before each phase the cache is warmed again with that phase's rows:
the mock source's rows for an epoch derived from (seed, phase), with the fields the regime is
read from (gas price, daily volatility, toxic share) set inside the phase's buckets. Everything
is a function of the seed and the episode index, never of timing or worker count.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace
from typing import Any

import structlog

from clmmd.agent.regime import TOXIC_EDGE, VOL_EDGES
from clmmd.artifacts.base.clock import Clock
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.mock_source import MockSource
from clmmd.scheduler.planner import plan_pool_refresh
from clmmd.scheduler.refresher import Refresher, RefreshReport
from clmmd.scheduler.registry import PRIORITIES, Registry
from clmmd.scheduler.source import FetchRequest, FetchResult

log = structlog.get_logger(__name__)

#: Episodes a mock market phase lasts before the seeded chain may move to another regime.
REGIME_PHASE_EPISODES = 4
#: Chance that a phase keeps the previous phase's regime (otherwise it moves to another one).
_STAY = 0.2
_GAS = (("low", 0.45, (6.0, 14.0)), ("normal", 0.4, (16.0, 38.0)), ("high", 0.15, (45.0, 90.0)))
_VOL = (
    ("low", 0.3, (0.010, VOL_EDGES[0] - 0.001)),
    ("mid", 0.45, (VOL_EDGES[0] + 0.002, VOL_EDGES[1] - 0.002)),
    ("high", 0.25, (VOL_EDGES[1] + 0.002, 0.09)),
)
_FLOW = (
    ("clean", 0.8, (0.02, TOXIC_EDGE - 0.03)),
    ("toxic", 0.2, (TOXIC_EDGE + 0.02, 0.45)),
)
_Buckets = tuple[tuple[str, float, tuple[float, float]], ...]


@dataclass(frozen=True)
class MarketState:
    """The regime a mock phase is in: gas level, volatility bucket, order flow."""

    gas: str
    vol: str
    flow: str


def phase_of(index: int) -> int:
    """The mock market phase of episode ``index`` (1-based): 0 for the first episodes."""
    return (index - 1) // REGIME_PHASE_EPISODES


def _rng(seed: int, *parts: object) -> random.Random:
    text = "|".join(str(p) for p in (seed, *parts))
    return random.Random(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest()))


def _pick(rng: random.Random, buckets: _Buckets) -> str:
    names = [name for name, _, _ in buckets]
    return rng.choices(names, weights=[w for _, w, _ in buckets])[0]


def market_state(seed: int, phase: int) -> MarketState:
    """The regime of ``phase`` for campaign ``seed`` (pure; phase 0 is drawn fresh)."""
    if phase < 0:
        raise ValueError(f"phase must be >= 0, got {phase}")
    state: MarketState | None = None
    for p in range(phase + 1):
        rng = _rng(seed, "regime", p)
        if state is not None and rng.random() < _STAY:
            continue
        previous = state
        while state == previous:  # a move goes somewhere else (ends: there are 18 states)
            state = MarketState(_pick(rng, _GAS), _pick(rng, _VOL), _pick(rng, _FLOW))
    assert state is not None
    return state


def _draw(rng: random.Random, buckets: _Buckets, name: str) -> float:
    low, high = next(span for bucket, _, span in buckets if bucket == name)
    return rng.uniform(low, high)


def shape_rows(
    query: str, rows: list[dict[str, Any]], state: MarketState, rng: random.Random
) -> list[dict[str, Any]]:
    """``rows`` with the columns the regime is read from set inside ``state``'s buckets (pure:
    new row objects, the same columns; other queries pass through)."""
    out = []
    for row in rows:
        if query == "gas_regime":
            gas = _draw(rng, _GAS, state.gas)
            extra: dict[str, Any] = {
                "gas_price_gwei": round(gas, 3),
                "base_fee_gwei": round(max(0.1, gas - rng.uniform(0.5, 3.0)), 3),
                "regime": state.gas,
            }
        elif query == "pool_health_score":
            extra = {"volatility_daily": round(_draw(rng, _VOL, state.vol), 5)}
        elif query == "toxic_flow":
            share = _draw(rng, _FLOW, state.flow)
            extra = {"toxic_share": round(share, 5)}
            volume = row.get("volume_usd")
            if isinstance(volume, int | float) and not isinstance(volume, bool):
                extra["informed_volume_usd"] = round(share * volume, 2)  # stays consistent
        else:
            return rows
        out.append({**row, **{k: v for k, v in extra.items() if k in row}})
    return out


class _PhasedMockSource:
    """The mock source for one phase (an ``IntelSource``): rows for the phase's epoch, shaped
    to the phase's regime."""

    def __init__(self, clock: Clock, seed: int, phase: int) -> None:
        # Phase 0 keeps the campaign seed as the epoch: a one-phase campaign's other fields are
        # what they always were.
        epoch = seed if phase == 0 else int.from_bytes(_rng(seed, "epoch", phase).randbytes(7))
        self._inner = MockSource(clock, epoch=epoch)
        self._state = market_state(seed, phase)
        self._seed = seed
        self._phase = phase

    async def fetch(self, request: FetchRequest) -> FetchResult:
        result = await self._inner.fetch(request)
        rng = _rng(self._seed, "rows", self._phase, request.key)
        rows = shape_rows(request.query_name, list(result.data["rows"]), self._state, rng)
        return replace(result, data={**result.data, "rows": rows})

    async def close(self) -> None:
        await self._inner.close()


async def warm_mock_intel(
    cache: IntelCache,
    registry: Registry,
    clock: Clock,
    pools: list[str],
    seed: int,
    phase: int = 0,
) -> list[RefreshReport]:
    """Force-refresh every enabled key of ``pools`` with the mock rows of ``seed``'s ``phase``."""
    refresher = Refresher(_PhasedMockSource(clock, seed, phase), cache, registry, clock)
    reports = []
    try:
        now = clock.now()
        for pool in pools:
            planned = plan_pool_refresh(registry, pool, {}, now, priorities=PRIORITIES, force=True)
            reports.append(await refresher.refresh(planned))
    finally:
        await refresher.close()
    return reports


@dataclass
class MockMarketPhases:
    """The campaign's hook to move the mock market on: ``await phases(p)`` warms phase ``p``."""

    cache: IntelCache
    registry: Registry
    clock: Clock
    pools: list[str]
    seed: int
    episodes_per_phase: int = REGIME_PHASE_EPISODES

    async def __call__(self, phase: int) -> list[RefreshReport]:
        reports = await warm_mock_intel(
            self.cache, self.registry, self.clock, self.pools, self.seed, phase
        )
        state = market_state(self.seed, phase)
        log.info(
            "intel_warmed",
            phase=phase,
            first_episode=phase * self.episodes_per_phase + 1,
            market=f"gas={state.gas}|vol={state.vol}|flow={state.flow}",
            keys=sum(r.ok for r in reports),
            failed=sum(r.failed for r in reports),
        )
        return reports
