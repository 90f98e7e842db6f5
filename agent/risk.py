"""The risk scalar: how much of the proposed size the executor may deploy in a regime.

Pure. The scalar multiplies the position size; the executor applies it and records it in
result.json (seed 004's lesson: a scalar that never reaches the executor must fail a test).
"""

from __future__ import annotations

from clmmd.agent.regime import UNKNOWN, Regime

#: Multiplicative haircut per component value; the scalar is their product, floored.
DEFAULT_PROFILE: dict[str, float] = {
    "gas=high": 0.8,
    f"gas={UNKNOWN}": 0.9,
    "vol=high": 0.6,
    "vol=mid": 0.85,
    f"vol={UNKNOWN}": 0.7,
    "flow=toxic": 0.6,
    f"flow={UNKNOWN}": 0.9,
}
FLOOR = 0.1


def risk_scalar(
    regime: Regime, profile: dict[str, float] | None = None, override: float | None = None
) -> float:
    """The scalar in (0, 1] for ``regime``; ``override`` (from configuration) wins."""
    if override is not None:
        if not 0 < override <= 1:
            raise ValueError(f"risk scalar override must be in (0, 1], got {override}")
        return override
    table = DEFAULT_PROFILE if profile is None else profile
    scalar = 1.0
    for part in (f"gas={regime.gas}", f"vol={regime.vol}", f"flow={regime.flow}"):
        scalar *= table.get(part, 1.0)
    return round(max(FLOOR, min(1.0, scalar)), 6)
