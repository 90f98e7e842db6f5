"""The learning agent: regime, policy, reward, learning gates, persisted state.

Public names are imported lazily (PEP 562), so importing the package stays cheap and
the episode read path never pulls in the network layer by accident.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AgentState": "agent.state",
    "LearningAgent": "agent.persistence",
    "LearningDecision": "agent.learner",
    "MarketView": "agent.regime",
    "PersistentAgent": "agent.persistence",
    "ProposalContext": "agent.proposer",
    "Regime": "agent.regime",
    "RewardWeights": "agent.reward",
    "choose_width": "agent.policy",
    "classify": "agent.regime",
    "compute_reward": "agent.reward",
    "decide_learning": "agent.learner",
    "propose": "agent.proposer",
    "risk_scalar": "agent.risk",
}
__all__ = [
    "AgentState",
    "LearningAgent",
    "LearningDecision",
    "MarketView",
    "PersistentAgent",
    "ProposalContext",
    "Regime",
    "RewardWeights",
    "choose_width",
    "classify",
    "compute_reward",
    "decide_learning",
    "propose",
    "risk_scalar",
]

if TYPE_CHECKING:
    from agent.learner import LearningDecision, decide_learning
    from agent.persistence import LearningAgent, PersistentAgent
    from agent.policy import choose_width
    from agent.proposer import ProposalContext, propose
    from agent.regime import MarketView, Regime, classify
    from agent.reward import RewardWeights, compute_reward
    from agent.risk import risk_scalar
    from agent.state import AgentState


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
