"""Reward: one pure function from an episode's outcome to reward.json.

Every component is expressed in percent of the size actually deployed, so episodes of
different sizes compare. Components (they sum to the total):

* ``pnl``: weight × market PnL of the position excluding fees and gas (LP value change);
* ``fees``: weight × fees earned;
* ``gas_penalty``: −weight × gas paid;
* ``range_penalty``: −weight × share of the horizon spent out of range (in percent points / 100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from clmmd.artifacts.models import Reward, RewardComponents
from clmmd.env.base import ExecutionOutcome


@dataclass(frozen=True)
class RewardWeights:
    pnl: float = 1.0
    fees: float = 1.0
    gas: float = 1.0
    range: float = 0.5

    def as_dict(self) -> dict[str, float]:
        return {"pnl": self.pnl, "fees": self.fees, "gas": self.gas, "range": self.range}


def compute_reward(
    *,
    pnl_usd: float,
    fees_usd: float,
    gas_cost_usd: float,
    time_in_range_pct: float,
    size_usd_applied: float,
    weights: RewardWeights | None = None,
) -> Reward:
    """The reward of one executed episode (see the module docstring for the formula)."""
    w = weights or RewardWeights()
    inputs = {
        "pnl_usd": pnl_usd,
        "fees_usd": fees_usd,
        "gas_cost_usd": gas_cost_usd,
        "time_in_range_pct": time_in_range_pct,
        "size_usd_applied": size_usd_applied,
    }
    # A NaN reward would poison the arm it is learned into for good (NaN never compares
    # greater, so the policy's argmax would stick to or never leave that arm): refuse it here.
    for name, value in inputs.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if size_usd_applied <= 0:
        raise ValueError(f"size_usd_applied must be positive, got {size_usd_applied}")
    pct = 100.0 / size_usd_applied
    market = pnl_usd - fees_usd + gas_cost_usd
    components = RewardComponents(
        pnl=round(w.pnl * market * pct, 9),
        fees=round(w.fees * fees_usd * pct, 9),
        gas_penalty=round(-w.gas * gas_cost_usd * pct, 9),
        range_penalty=round(-w.range * (100.0 - time_in_range_pct) / 100.0, 9),
    )
    total = components.pnl + components.fees + components.gas_penalty + components.range_penalty
    return Reward(total=round(total, 9), components=components, weights=w.as_dict())


def outcome_reward(outcome: ExecutionOutcome, weights: RewardWeights | None = None) -> Reward:
    """:func:`compute_reward` of an executed position (the runner and the evaluation use it)."""
    return compute_reward(
        pnl_usd=outcome.pnl_usd,
        fees_usd=outcome.fees_usd,
        gas_cost_usd=outcome.gas_cost_usd,
        time_in_range_pct=outcome.time_in_range_pct,
        size_usd_applied=outcome.size_usd_applied,
        weights=weights,
    )
