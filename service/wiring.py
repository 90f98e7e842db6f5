"""Building the intelligence stack from settings: registry, cache, source, refresher, reader.

The episode side gets only ``MarketIntelligence`` (cache reads); the network source is built
only when a refresh actually needs it, and a Dune source only with a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from clmmd.artifacts.base.clock import Clock
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.credits import PLANS, CreditLedger
from clmmd.scheduler.dune_source import DuneSource
from clmmd.scheduler.intel import MarketIntelligence
from clmmd.scheduler.refresher import Refresher
from clmmd.scheduler.registry import Registry, RegistryError, load_registry
from clmmd.scheduler.source import IntelSource
from clmmd.service.config import ConfigError, Settings
from clmmd.service.logging import REDACTOR, configure_logging

if TYPE_CHECKING:
    from clmmd.scheduler.dune import DuneClient


@dataclass
class IntelStack:
    registry: Registry
    cache: IntelCache
    intel: MarketIntelligence

    def close(self) -> None:
        self.cache.close()


def start_logging(
    settings: Settings, *, stream: IO[bytes] | None = None, level: str | None = None
) -> None:
    """Configure JSON logging (to ``stream``, default stdout) at ``level`` (default the
    configured one) and register every secret to redact."""
    configure_logging(level or settings.log_level, stream=stream)
    for secret in (settings.dune_api_key, settings.gateway_api_key):
        if secret is not None:
            REDACTOR.register(secret.get_secret_value())


def load_configured_registry(settings: Settings) -> Registry:
    try:
        return load_registry(
            settings.queries_file,
            enable=settings.enable_queries,
            disable=settings.disable_queries,
        )
    except RegistryError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def open_intel(settings: Settings, clock: Clock) -> IntelStack:
    """Open the cache under ``<data_dir>/cache`` and the read side over it."""
    registry = load_configured_registry(settings)
    cache = IntelCache(settings.data_dir / "cache", size_limit=settings.cache_size_mb * 1024 * 1024)
    return IntelStack(registry, cache, MarketIntelligence(cache, registry, clock))


@dataclass
class RefreshStack:
    """What a refresh needs besides the cache: the source, the refresher, the credit ledger."""

    source: IntelSource
    refresher: Refresher
    ledger: CreditLedger

    async def close(self) -> None:
        await self.refresher.close()
        await self.source.close()


def build_refresh_stack(
    settings: Settings, stack: IntelStack, clock: Clock, *, workers: int
) -> RefreshStack:
    """The configured source and a Refresher over it, inside today's credit budget."""
    ledger = CreditLedger(stack.cache, clock, settings.dune_credit_budget_per_day)
    source = build_source(settings, clock, ledger)
    estimate = source.estimate_credits if isinstance(source, DuneSource) else None
    refresher = Refresher(
        source,
        stack.cache,
        stack.registry,
        clock,
        workers=workers,
        fetch_timeout_s=settings.refresh_deadline_s,
        ledger=ledger,
        estimate=estimate,
    )
    return RefreshStack(source, refresher, ledger)


def build_source(
    settings: Settings, clock: Clock, ledger: CreditLedger | None = None
) -> IntelSource:
    """The configured fetch source. INTEL_DATA_SOURCE=dune without a key is a config error."""
    if settings.intel_data_source == "mock":
        from clmmd.scheduler.mock_source import MockSource

        return MockSource(clock)
    if settings.dune_api_key is None:
        raise ConfigError(
            "invalid configuration: DUNE_API_KEY is NOT SET but INTEL_DATA_SOURCE='dune'; "
            "set the key or use INTEL_DATA_SOURCE=mock"
        )
    client = dune_client(settings, clock, ledger)
    return DuneSource(
        client,
        clock,
        performance=settings.dune_performance,
        credits_per_mb=client_credits_per_mb(settings),
    )


def client_credits_per_mb(settings: Settings) -> float:
    """Credits per MB of results: the configured figure, else the plan's."""
    if settings.dune_credits_per_mb is not None:
        return settings.dune_credits_per_mb
    return PLANS[settings.dune_plan].credits_per_mb


def dune_client(settings: Settings, clock: Clock, ledger: CreditLedger | None) -> DuneClient:
    """The one way to build a Dune client from settings (the key must be set)."""
    from clmmd.scheduler.dune import DuneClient

    if settings.dune_api_key is None:
        raise ConfigError("invalid configuration: DUNE_API_KEY is NOT SET")
    plan = PLANS[settings.dune_plan]
    return DuneClient(
        settings.dune_api_base_url,
        settings.dune_api_key,
        clock,
        call_timeout_s=settings.dune_timeout_s,
        refresh_deadline_s=settings.refresh_deadline_s,
        poll_interval_s=settings.dune_poll_interval_s,
        execute_rpm=settings.dune_execute_rpm or plan.execute_rpm,
        read_rpm=settings.dune_read_rpm or plan.read_rpm,
        rate_headroom=settings.dune_rate_headroom,
        rate_window_margin_s=settings.dune_rate_window_margin_s,
        performance=settings.dune_performance,
        credit_sink=ledger,
        credits_per_mb=client_credits_per_mb(settings),
    )
