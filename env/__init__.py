"""Execution environments: Uniswap V3 math, the mock simulator, Gateway (real mode).

Public names are imported lazily (PEP 562), so importing the package stays cheap and
the episode read path never pulls in the network layer by accident.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ClmmEnv": "env.base",
    "EnvHealth": "env.base",
    "ExecutionOutcome": "env.base",
    "ExecutionRequest": "env.base",
    "ExecutionSkipped": "env.base",
    "GatewayClient": "env.gateway",
    "KNOWN_POOLS": "env.base",
    "MarketInputs": "env.base",
    "MockClmmEnv": "env.mock",
    "PoolSpec": "env.base",
    "PoolValidationError": "env.base",
    "RealClmmEnv": "env.real",
    "check_gates": "env.gates",
    "pool_by_address": "env.base",
    "to_checksum_address": "env.validator",
    "validate_pool": "env.validator",
}
__all__ = [
    "KNOWN_POOLS",
    "ClmmEnv",
    "EnvHealth",
    "ExecutionOutcome",
    "ExecutionRequest",
    "ExecutionSkipped",
    "GatewayClient",
    "MarketInputs",
    "MockClmmEnv",
    "PoolSpec",
    "PoolValidationError",
    "RealClmmEnv",
    "check_gates",
    "pool_by_address",
    "to_checksum_address",
    "validate_pool",
]

if TYPE_CHECKING:
    from env.base import (
        KNOWN_POOLS,
        ClmmEnv,
        EnvHealth,
        ExecutionOutcome,
        ExecutionRequest,
        ExecutionSkipped,
        MarketInputs,
        PoolSpec,
        PoolValidationError,
        pool_by_address,
    )
    from env.gates import check_gates
    from env.gateway import GatewayClient
    from env.mock import MockClmmEnv
    from env.real import RealClmmEnv
    from env.validator import to_checksum_address, validate_pool


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
