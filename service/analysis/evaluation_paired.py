"""The pure core of ``clmmd evaluate``: both arms of every episode on the same price path.

For every episode, two positions go through :class:`env.mock.MockClmmEnv` directly (no
artifact folders): the learned policy's greedy choice (posterior-mean argmax, no exploration)
and a static ±X % range around the price, with the same size and risk scalar. The price path
depends only on the episode seed and the market inputs, so both positions see the same path.
CPU only: the snapshot comes in ready-made, nothing is read or written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from clmmd.agent.proposer import ProposalContext, propose
from clmmd.agent.regime import MarketView
from clmmd.agent.reward import outcome_reward
from clmmd.agent.state import AgentState
from clmmd.artifacts.layout import episode_id
from clmmd.artifacts.models import Proposal
from clmmd.env.base import ExecutionRequest, PoolSpec
from clmmd.env.mock import MockClmmEnv
from clmmd.env.pricing import usd_range_to_ticks
from clmmd.scheduler.intel import IntelSnapshot
from clmmd.service.analysis.evaluation_stats import (
    Bounds,
    Interval,
    mean_interval,
    paired_difference,
)
from clmmd.service.market import MockEnv
from clmmd.service.runs.context import (
    EpisodeSettings,
    derive_seed,
    execution_request,
    market_view,
)


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is summarised: the resolution it is reported at (statistics run on values
    rounded to it), the range its values cannot leave, and the range of a paired difference."""

    resolution: float
    digits: int
    bounds: Bounds = (None, None)
    difference_bounds: Bounds = (None, None)


_USD = MetricSpec(0.01, 2)
_USD_NON_NEGATIVE = MetricSpec(0.01, 2, bounds=(0.0, None))

#: What is compared per episode: the reward and the outcome figures it is computed from, the
#: PnL's terms in the order PnL = HODL return − IL + fees − gas.
METRIC_SPECS: dict[str, MetricSpec] = {
    "reward": MetricSpec(1e-4, 4),
    "pnl_usd": _USD,
    "hodl_return_usd": _USD,
    "il_usd": _USD_NON_NEGATIVE,
    "fees_usd": _USD_NON_NEGATIVE,
    "gas_cost_usd": _USD_NON_NEGATIVE,
    "time_in_range_pct": MetricSpec(
        0.01, 2, bounds=(0.0, 100.0), difference_bounds=(-100.0, 100.0)
    ),
}
METRICS: tuple[str, ...] = tuple(METRIC_SPECS)


@dataclass(frozen=True)
class ArmOutcome:
    """One simulated position of one evaluation episode."""

    width_ticks: int  # tick_upper − tick_lower after snapping to the tick spacing
    tick_lower: int
    tick_upper: int
    start_price_usd: float
    end_price_usd: float
    values: dict[str, float]  # one entry per name in METRICS


@dataclass(frozen=True)
class PairedEpisode:
    """Both arms of one episode; ``policy_width_ticks`` is the arm the policy chose."""

    index: int
    seed: int
    policy_width_ticks: int
    learned: ArmOutcome
    baseline: ArmOutcome
    regime_key: str = ""


@dataclass(frozen=True)
class EvaluationReport:
    """Every paired episode of one evaluation, and per metric the 95 % intervals of each arm
    and of the paired difference learned − baseline."""

    seed: int
    first_index: int
    baseline_width_pct: float
    agent_version: str
    pool_address: str
    episodes: tuple[PairedEpisode, ...]
    learned: dict[str, Interval] = field(default_factory=dict)
    baseline: dict[str, Interval] = field(default_factory=dict)
    difference: dict[str, Interval] = field(default_factory=dict)

    @property
    def learned_widths(self) -> dict[int, int]:
        """How often the learned policy chose each arm (policy width in ticks)."""
        return dict(sorted(Counter(e.policy_width_ticks for e in self.episodes).items()))

    @property
    def regimes(self) -> dict[str, int]:
        """Episodes per market regime, most frequent first."""
        return dict(Counter(e.regime_key for e in self.episodes).most_common())

    def learned_widths_by_regime(self) -> dict[str, dict[int, int]]:
        """Per regime, how often the learned policy chose each width (ticks)."""
        return {
            regime: dict(
                sorted(
                    Counter(
                        e.policy_width_ticks for e in self.episodes if e.regime_key == regime
                    ).items()
                )
            )
            for regime in self.regimes
        }


def baseline_ticks(pool: PoolSpec, price_usd: float, width_pct: float) -> tuple[int, int]:
    """The static range ``price × (1 ± width_pct/100)``, widened to the pool's tick spacing."""
    if not 0 < width_pct < 100:
        raise ValueError(f"baseline width must be in (0, 100) percent, got {width_pct}")
    share = width_pct / 100.0
    return usd_range_to_ticks(pool, price_usd * (1 - share), price_usd * (1 + share))


def _arm(env: MockEnv, request: ExecutionRequest, s: EpisodeSettings) -> ArmOutcome:
    outcome = env.run(request)
    reward = outcome_reward(outcome, s.reward_weights)
    return ArmOutcome(
        width_ticks=request.tick_upper - request.tick_lower,
        tick_lower=request.tick_lower,
        tick_upper=request.tick_upper,
        start_price_usd=float(outcome.simulation["start_price_usd"]),
        end_price_usd=float(outcome.simulation["end_price_usd"]),
        values={
            "reward": reward.total,
            "pnl_usd": outcome.pnl_usd,
            "fees_usd": outcome.fees_usd,
            "il_usd": outcome.il_usd,
            "hodl_return_usd": outcome.hodl_return_usd,
            "gas_cost_usd": outcome.gas_cost_usd,
            "time_in_range_pct": outcome.time_in_range_pct,
        },
    )


def greedy_proposal(
    s: EpisodeSettings,
    pool: PoolSpec,
    view: MarketView,
    state: AgentState,
    index: int,
    episode: str | None = None,
) -> tuple[int, Proposal]:
    """Episode ``index``'s seed and the policy's greedy proposal for it (no exploration), as a
    campaign with ``s.campaign_seed`` would propose (``episode``: its id, default the
    campaign's ``ep_<index>``)."""
    seed = derive_seed(s.campaign_seed, index)
    ctx = ProposalContext(
        run_id=s.run_id,
        episode_id=episode or episode_id(index),
        seed=seed,
        pool=pool,
        view=view,
        size_usd=s.size_usd,
        horizon_hours=s.horizon_hours,
        risk_scalar_override=s.risk_scalar_override,
        risk_profile=s.risk_profile,
    )
    return seed, propose(ctx, state, greedy=True)


def evaluate_on_snapshot(
    s: EpisodeSettings,
    pool: PoolSpec,
    snapshot: IntelSnapshot,
    state: AgentState,
    *,
    episodes: int,
    first_index: int = 1,
    baseline_width_pct: float = 5.0,
    env: MockEnv | None = None,
) -> EvaluationReport:
    """:func:`evaluate_paired` with one snapshot for every episode (a market that stays put)."""
    return evaluate_paired(
        s,
        pool,
        lambda _index: snapshot,
        state,
        episodes=episodes,
        first_index=first_index,
        baseline_width_pct=baseline_width_pct,
        env=env,
    )


def evaluate_paired(
    s: EpisodeSettings,
    pool: PoolSpec,
    snapshot_for: Callable[[int], IntelSnapshot],
    state: AgentState,
    *,
    episodes: int,
    first_index: int = 1,
    baseline_width_pct: float = 5.0,
    env: MockEnv | None = None,
) -> EvaluationReport:
    """The pure core of :func:`service.evaluation.evaluate` (CPU only): both arms on episodes
    ``first_index``…, episode ``i`` seeing ``snapshot_for(i)``, in ``env``'s market (default:
    the synthetic one)."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if first_index < 1:
        raise ValueError(f"first_index must be at least 1, got {first_index}")
    env = env or MockClmmEnv()
    pairs: list[PairedEpisode] = []
    for index in range(first_index, first_index + episodes):
        snapshot = snapshot_for(index)
        view = market_view(snapshot)
        market = snapshot.market_inputs()
        seed, proposal = greedy_proposal(s, pool, view, state, index)
        assert proposal.tick_lower is not None and proposal.tick_upper is not None
        assert proposal.price_at_proposal_usd is not None and proposal.risk_scalar is not None
        assert proposal.action is not None
        learned = execution_request(s, proposal, pool=pool, seed=seed, market=market)
        low, high = baseline_ticks(pool, proposal.price_at_proposal_usd, baseline_width_pct)
        # Only the range differs: same size, risk scalar, seed and market, so the same path.
        baseline = replace(learned, tick_lower=low, tick_upper=high)
        pairs.append(
            PairedEpisode(
                index,
                seed,
                proposal.action.width_ticks,
                _arm(env, learned, s),
                _arm(env, baseline, s),
                regime_key=proposal.regime_key or "",
            )
        )
    learned_values = {m: [p.learned.values[m] for p in pairs] for m in METRICS}
    baseline_values = {m: [p.baseline.values[m] for p in pairs] for m in METRICS}
    return EvaluationReport(
        seed=s.campaign_seed,
        first_index=first_index,
        baseline_width_pct=baseline_width_pct,
        agent_version=state.agent_version,
        pool_address=pool.address,
        episodes=tuple(pairs),
        learned={m: _interval(m, values) for m, values in learned_values.items()},
        baseline={m: _interval(m, values) for m, values in baseline_values.items()},
        difference={
            m: paired_difference(
                learned_values[m],
                baseline_values[m],
                resolution=METRIC_SPECS[m].resolution,
                bounds=METRIC_SPECS[m].difference_bounds,
            )
            for m in METRICS
        },
    )


def _interval(metric: str, values: list[float]) -> Interval:
    spec = METRIC_SPECS[metric]
    return mean_interval(values, resolution=spec.resolution, bounds=spec.bounds)
