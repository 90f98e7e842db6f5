"""Learning gates: whether an episode's outcome may update the agent, and why (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LearningDecision:
    apply: bool
    reason: str


def decide_learning(
    *,
    status: str,
    exec_mode: str,
    learn_from_mock: bool,
    fresh_pct: float,
    fresh_pct_floor: float,
    regime_unknown: bool,
) -> LearningDecision:
    """The first gate that blocks names the reason; all passing gives ``apply=True``."""
    if status != "success":
        return LearningDecision(False, f"gate: episode status is {status!r}, not 'success'")
    if exec_mode == "mock" and not learn_from_mock:
        return LearningDecision(False, "gate: mock episode and LEARN_FROM_MOCK=false")
    # ``not >=`` rather than ``<``: a NaN fresh_pct must block, not slip through.
    if not fresh_pct >= fresh_pct_floor:
        return LearningDecision(
            False, f"gate: intel fresh_pct {fresh_pct:.1f} below floor {fresh_pct_floor:.1f}"
        )
    if regime_unknown:
        return LearningDecision(False, "gate: regime has an unknown component")
    return LearningDecision(True, "all gates passed")
