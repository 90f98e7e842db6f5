"""The daemon: configuration, logging, lifecycle, episode worker pool, campaign, CLI.

Public names are imported lazily (PEP 562), so importing the package stays cheap and
the episode read path never pulls in the network layer by accident.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "Clock": "service.clock",
    "ConfigError": "service.config",
    "Daemon": "service.daemon",
    "EpisodeRunner": "service.episodes",
    "FakeClock": "service.clock",
    "Settings": "service.config",
    "SystemClock": "service.clock",
    "load_settings": "service.config",
    "main": "service.cli",
    "run_campaign": "service.campaign",
}
__all__ = [
    "Clock",
    "ConfigError",
    "Daemon",
    "EpisodeRunner",
    "FakeClock",
    "Settings",
    "SystemClock",
    "load_settings",
    "main",
    "run_campaign",
]

if TYPE_CHECKING:
    from service.campaign import run_campaign
    from service.cli import main
    from service.clock import Clock, FakeClock, SystemClock
    from service.config import ConfigError, Settings, load_settings
    from service.daemon import Daemon
    from service.episodes import EpisodeRunner


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
