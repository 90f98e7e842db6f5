"""The pure core of ``clmmd sweep``: the grid, its batches, and the task that evaluates one.

A sweep evaluates every (pool, arm, seed) cell of a grid on ``episodes`` episodes. An *arm*
is the learned policy (greedy, as ``clmmd evaluate``'s learned arm) or a static range ±X %
around the price (as its baseline); a *seed* is a campaign seed: the mock intel of that seed
and episode ``i`` on ``derive_seed(seed, i)``'s price path, so cell (pool, static 5 %, S)
repeats ``clmmd evaluate --seed S``'s baseline numbers.

:func:`run_batch` is the task: the shared :class:`SweepContext` (settings without secrets,
the agent's arm statistics, the market snapshots, the arms, the market) and a
:class:`SweepBatch` (a slice of the grid) in, a :class:`BatchResult` (the slice's
evaluations, packed) out; nothing read or written, no clock, no randomness beyond the seeds.
So the same batches give the same outcomes in this process, in another one or on another
machine, and the head can write them in grid order whatever ran them.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from clmmd.agent.regime import MarketView
from clmmd.agent.reward import outcome_reward
from clmmd.agent.state import AgentState
from clmmd.artifacts.layout import episode_id
from clmmd.artifacts.models import Proposal, RangeAction, Reward
from clmmd.env.base import ExecutionOutcome, MarketInputs, PoolSpec
from clmmd.env.mock import MockClmmEnv
from clmmd.env.pricing import ticks_to_usd_range
from clmmd.env.replay import ReplayMarket
from clmmd.env.replay_env import ReplayClmmEnv
from clmmd.service.analysis.evaluation_paired import baseline_ticks, greedy_proposal
from clmmd.service.runs.context import EpisodeSettings, execution_request
from clmmd.service.runs.warmup import phase_of


@dataclass(frozen=True, order=True)
class Arm:
    """The learned policy (``width_pct`` None) or a static range ±``width_pct`` %."""

    kind: Literal["policy", "static"]
    width_pct: float | None = None

    @property
    def label(self) -> str:
        return "policy" if self.kind == "policy" else f"±{self.width_pct:g}%"


def parse_arms(text: str) -> tuple[Arm, ...]:
    """``"policy,2.5,5,10"`` → arms; ``ValueError`` naming a bad entry."""
    arms: list[Arm] = []
    for raw in (part.strip() for part in text.split(",")):
        if raw == "policy":
            arm = Arm("policy")
        else:
            try:
                width = float(raw)
            except ValueError:
                raise ValueError(
                    f"--widths: {raw!r} is neither 'policy' nor a width in percent"
                ) from None
            if not (math.isfinite(width) and 0 < width < 100):
                raise ValueError(f"--widths: {raw!r} must be in (0, 100) percent")
            arm = Arm("static", width)
        if arm in arms:
            raise ValueError(f"--widths: {raw!r} is listed twice")
        arms.append(arm)
    return tuple(arms)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"1,2,5-8"`` → (1, 2, 5, 6, 7, 8); ``ValueError`` naming a bad entry."""
    seeds: list[int] = []
    for raw in (part.strip() for part in text.split(",")):
        low, sep, high = raw.partition("-")
        try:
            first, last = (int(low), int(high)) if sep else (int(raw), int(raw))
        except ValueError:
            raise ValueError(f"--seeds: {raw!r} is not a seed or a range A-B") from None
        if first < 0 or last < first:
            raise ValueError(f"--seeds: {raw!r} must be seeds >= 0, low to high")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError("--seeds: a seed is listed twice")
    return tuple(seeds)


@dataclass(frozen=True)
class MarketSnapshot:
    """What a task needs of one (pool, seed) intel snapshot: the simulator's inputs and the
    agent's view (the head keeps the snapshot itself for metadata.json).

    ``market``/``view`` are those of the mock market's first phase; ``later`` holds the next
    phases' (the market moves through seeded regimes every few episodes, as in a campaign and
    in ``clmmd evaluate``: :mod:`service.runs.warmup`)."""

    pool: PoolSpec
    seed: int
    market: MarketInputs
    view: MarketView
    later: tuple[tuple[MarketInputs, MarketView], ...] = ()

    def at(self, index: int) -> tuple[MarketInputs, MarketView]:
        """The market inputs and view episode ``index`` (1-based) sees."""
        phase = phase_of(index)
        if phase == 0:
            return self.market, self.view
        if phase > len(self.later):
            raise IndexError(f"episode {index} is in market phase {phase}: not in this snapshot")
        return self.later[phase - 1]


@dataclass(frozen=True)
class SweepItem:
    """One evaluation: snapshot and arm by position in the grid, episode index in the cell,
    and the episode folder it will be written to."""

    snapshot: int
    arm: int
    index: int
    episode_id: str


@dataclass(frozen=True)
class SweepMarket:
    """The market the grid's episodes run in: the synthetic simulator (``replays`` empty) or
    each pool's replayed history (``CLMMD_MARKET=replay``). Built on the head
    (:func:`service.market.sweep_market`), shared by every task."""

    replays: tuple[ReplayMarket, ...] = ()

    def envs(self) -> Callable[[PoolSpec], MockClmmEnv | ReplayClmmEnv]:
        """The environment of each pool (one per pool, made on first use)."""
        if not self.replays:
            synthetic = MockClmmEnv()
            return lambda pool: synthetic
        by_pool = {m.pool.address.lower(): m for m in self.replays}
        made: dict[str, ReplayClmmEnv] = {}

        def env(pool: PoolSpec) -> ReplayClmmEnv:
            key = pool.address.lower()
            if key not in made:
                if key not in by_pool:
                    raise ValueError(f"pool {pool.address} has no replayed history in this sweep")
                made[key] = ReplayClmmEnv(by_pool[key])
            return made[key]

        return env


@dataclass(frozen=True)
class SweepContext:
    """What every task of a sweep shares: settings without secrets, the agent's arm
    statistics, one market snapshot per (pool, seed) in grid order (pool, then seed), the
    arms, the episodes per cell and the market. Ray stores it once; a task gets a reference."""

    settings: EpisodeSettings
    state: AgentState
    snapshots: tuple[MarketSnapshot, ...]
    arms: tuple[Arm, ...]
    episodes: int
    market: SweepMarket = SweepMarket()

    @property
    def size(self) -> int:
        return len(self.snapshots) * len(self.arms) * self.episodes

    def item(self, position: int) -> SweepItem:
        """The grid's item at ``position`` (0-based) in grid order: snapshot, arm, episode
        index; the episode folders are numbered in that order."""
        cell, offset = divmod(position, self.episodes)
        snapshot, arm = divmod(cell, len(self.arms))
        return SweepItem(snapshot, arm, offset + 1, episode_id(position + 1))


@dataclass(frozen=True)
class SweepBatch:
    """One task's input besides the shared context: items ``start`` to ``stop`` (exclusive)
    of the grid."""

    start: int
    stop: int


@dataclass(frozen=True)
class Evaluation:
    """One evaluated episode: what the head writes as its artifacts."""

    pool_address: str
    arm: Arm
    seed: int
    index: int
    episode_seed: int
    proposal: Proposal
    outcome: ExecutionOutcome
    reward: Reward


@dataclass(frozen=True)
class BatchResult:
    """What a task returns: its evaluations as one pickled list of plain values per item
    (episode seed, then the proposal, outcome and reward as dicts).

    Plain values pickle in C on both sides; models and dataclasses would go through a Python
    hook per object in the task and fill the head's heap with objects for the garbage
    collector to walk (measured: more than half the evaluations' own cost). The head decodes
    it where it writes (:meth:`evaluations`), the same for every executor."""

    start: int
    stop: int
    packed: bytes

    def evaluations(self, context: SweepContext) -> list[Evaluation]:
        """The batch's evaluations, equal to what :func:`evaluate_batch` made in the task."""
        rows = pickle.loads(self.packed)
        out = []
        for position, (episode_seed, proposal, outcome, reward) in zip(
            range(self.start, self.stop), rows, strict=True
        ):
            item = context.item(position)
            snap = context.snapshots[item.snapshot]
            out.append(
                Evaluation(
                    pool_address=snap.pool.address,
                    arm=context.arms[item.arm],
                    seed=snap.seed,
                    index=item.index,
                    episode_seed=episode_seed,
                    proposal=Proposal.model_validate(proposal),
                    outcome=ExecutionOutcome(**outcome),
                    reward=Reward.model_validate(reward),
                )
            )
        return out


def static_proposal(proposal: Proposal, pool: PoolSpec, width_pct: float) -> Proposal:
    """The policy's proposal with its range replaced by the static ±``width_pct`` % range
    (same size, risk scalar and seed, so the same price path)."""
    assert proposal.price_at_proposal_usd is not None
    low, high = baseline_ticks(pool, proposal.price_at_proposal_usd, width_pct)
    usd_low, usd_high = ticks_to_usd_range(pool, low, high)
    return proposal.model_copy(
        update={
            "tick_lower": low,
            "tick_upper": high,
            "price_lower_usd": round(usd_low, 6),
            "price_upper_usd": round(usd_high, 6),
            "action": RangeAction(width_ticks=high - low, fee_pips=pool.fee_pips),
            "expected_reward": None,
            "agent_version": f"static-{width_pct:g}pct",
        }
    )


def evaluate_batch(context: SweepContext, batch: SweepBatch) -> list[Evaluation]:
    """Evaluate items ``batch.start`` to ``batch.stop`` of the grid, in order (pure)."""
    env = context.market.envs()
    s = context.settings
    out: list[Evaluation] = []
    for position in range(batch.start, batch.stop):
        item = context.item(position)
        snap = context.snapshots[item.snapshot]
        arm = context.arms[item.arm]
        cell = replace(s, campaign_seed=snap.seed)
        market, view = snap.at(item.index)
        seed, proposal = greedy_proposal(
            cell, snap.pool, view, context.state, item.index, item.episode_id
        )
        if arm.kind == "static":
            assert arm.width_pct is not None
            proposal = static_proposal(proposal, snap.pool, arm.width_pct)
        request = execution_request(cell, proposal, pool=snap.pool, seed=seed, market=market)
        outcome = env(snap.pool).run(request)
        out.append(
            Evaluation(
                pool_address=snap.pool.address,
                arm=arm,
                seed=snap.seed,
                index=item.index,
                episode_seed=seed,
                proposal=proposal,
                outcome=outcome,
                reward=outcome_reward(outcome, s.reward_weights),
            )
        )
    return out


def run_batch(context: SweepContext, batch: SweepBatch) -> BatchResult:
    """The task: :func:`evaluate_batch`, packed for the trip back to the head."""
    rows = [
        (e.episode_seed, e.proposal.model_dump(), dict(vars(e.outcome)), e.reward.model_dump())
        for e in evaluate_batch(context, batch)
    ]
    return BatchResult(
        batch.start, batch.stop, pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
    )


def make_batches(total: int, batch_size: int) -> list[SweepBatch]:
    """``total`` grid items cut into batches of ``batch_size`` consecutive items (the last
    may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    return [
        SweepBatch(start, min(start + batch_size, total)) for start in range(0, total, batch_size)
    ]
