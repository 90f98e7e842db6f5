"""Market intelligence: query registry, Dune client, cache with quality, refresh, triggers.

Public names are imported lazily (PEP 562), so importing the package stays cheap and
the episode read path never pulls in the network layer by accident.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "DuneClient": "scheduler.dune",
    "DuneSource": "scheduler.dune_source",
    "FetchRequest": "scheduler.source",
    "FetchResult": "scheduler.source",
    "IntelCache": "scheduler.cache",
    "IntelFetchError": "scheduler.source",
    "IntelSnapshot": "scheduler.intel",
    "IntelSource": "scheduler.source",
    "MarketIntelligence": "scheduler.intel",
    "MockSource": "scheduler.mock_source",
    "QuerySpec": "scheduler.registry",
    "RefreshScheduler": "scheduler.scheduling",
    "Refresher": "scheduler.refresher",
    "Registry": "scheduler.registry",
    "TriggerTail": "scheduler.trigger_tail",
    "load_registry": "scheduler.registry",
    "plan_refresh": "scheduler.planner",
    "quality": "scheduler.quality",
    "trigger_episodes": "scheduler.triggers",
    "trigger_refresh": "scheduler.triggers",
}
__all__ = [
    "DuneClient",
    "DuneSource",
    "FetchRequest",
    "FetchResult",
    "IntelCache",
    "IntelFetchError",
    "IntelSnapshot",
    "IntelSource",
    "MarketIntelligence",
    "MockSource",
    "QuerySpec",
    "RefreshScheduler",
    "Refresher",
    "Registry",
    "TriggerTail",
    "load_registry",
    "plan_refresh",
    "quality",
    "trigger_episodes",
    "trigger_refresh",
]

if TYPE_CHECKING:
    from scheduler.cache import IntelCache
    from scheduler.dune import DuneClient
    from scheduler.dune_source import DuneSource
    from scheduler.intel import IntelSnapshot, MarketIntelligence
    from scheduler.mock_source import MockSource
    from scheduler.planner import plan_refresh
    from scheduler.quality import quality
    from scheduler.refresher import Refresher
    from scheduler.registry import QuerySpec, Registry, load_registry
    from scheduler.scheduling import RefreshScheduler
    from scheduler.source import FetchRequest, FetchResult, IntelFetchError, IntelSource
    from scheduler.trigger_tail import TriggerTail
    from scheduler.triggers import trigger_episodes, trigger_refresh


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
