"""clmmd's market as Gymnasium environments (the ``rl`` extra): observation, accounting, envs.

Why here: the environments wrap the mock market (``clmmd.env``) and the agent's reward,
regime and risk scalar (``clmmd.agent``), so they sit in ``clmmd.service``, the one layer
allowed to import both; inside service they depend on no other sub-package (the Minari export
in ``service.analysis`` encodes observations with :mod:`clmmd.service.rl.observation`).

Importing the package registers ``clmmd/UniswapV3LP-v0`` and
``clmmd/UniswapV3LPContinuous-v0`` when Gymnasium is installed; the observation encoding and
the episode accounting need only numpy.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("gymnasium") is not None:
    from clmmd.service.rl.registration import register_envs

    register_envs()
