"""Registering the LP environments with Gymnasium (ids ``clmmd/UniswapV3LP-v0`` and
``clmmd/UniswapV3LPContinuous-v0``).

``import clmmd.service.rl`` registers them. The package also declares the entry point
``gymnasium.envs: clmmd = clmmd.service.rl.registration:register_envs`` (pyproject.toml) for
loaders that read it; Gymnasium itself stopped loading such plugins in 1.0, so with a current
Gymnasium ``gymnasium.make("clmmd.service.rl:clmmd/UniswapV3LP-v0")`` (module prefix) or the
import does it.
"""

from __future__ import annotations

import gymnasium as gym

DISCRETE_ID = "clmmd/UniswapV3LP-v0"
CONTINUOUS_ID = "clmmd/UniswapV3LPContinuous-v0"
ENV_IDS: dict[str, str] = {
    DISCRETE_ID: "clmmd.service.rl.lp_env:UniswapV3LPEnv",
    CONTINUOUS_ID: "clmmd.service.rl.lp_env:UniswapV3LPContinuousEnv",
}


def register_envs() -> None:
    """Register both ids (idempotent)."""
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
