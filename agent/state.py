"""The agent's learned state: per-regime arm statistics, versioned.

Immutable value: ``with_reward`` returns a new state with the version bumped, so a reader never
sees a half-applied update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from clmmd.agent.policy import ArmStats

AGENT_NAME = "clmmd-agent"
AGENT_RELEASE = "0.1"
#: The largest version (and observation count) a state file can hold: JSON integers are read
#: and written as unsigned 64-bit.
MAX_COUNT = 2**64 - 1


@dataclass(frozen=True)
class AgentState:
    version: int = 0
    arms: dict[str, dict[int, ArmStats]] = field(default_factory=dict)

    @property
    def agent_version(self) -> str:
        """``clmmd-agent/0.1+s<version>``: the release and how many updates shaped it."""
        return f"{AGENT_NAME}/{AGENT_RELEASE}+s{self.version}"

    def arms_for(self, regime_key: str) -> dict[int, ArmStats]:
        return self.arms.get(regime_key, {})

    def with_reward(self, regime_key: str, width_ticks: int, reward: float) -> AgentState:
        """A new state with ``reward`` added to one arm and the version bumped (self unchanged).

        ``ValueError`` (nothing changed) for a non-finite reward, or when the update would take
        the arm's statistics past what a float holds (extreme earlier rewards) or the version
        past :data:`MAX_COUNT`: such a state could not be saved and read back, and refusing one
        update is better than losing the whole learned state at the next start.
        """
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        if self.version >= MAX_COUNT:
            raise ValueError(f"state version {self.version} is at its limit; not updated")
        regime_arms = dict(self.arms_for(regime_key))
        updated = regime_arms.get(width_ticks, ArmStats()).add(reward)
        if not (math.isfinite(updated.mean) and math.isfinite(updated.m2)):
            raise ValueError(
                f"reward {reward} would overflow the statistics of arm {width_ticks} in "
                f"{regime_key!r}; not updated"
            )
        regime_arms[width_ticks] = updated
        arms = dict(self.arms)
        arms[regime_key] = regime_arms
        return AgentState(version=self.version + 1, arms=arms)
