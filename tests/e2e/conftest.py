"""Fixtures of the end-to-end suite (run by ``make e2e``; ``make test`` does not collect it).

One stack (anvil + Uniswap V3 at mainnet addresses + real Gateway v2.13) per session; a trader
swapping both ways runs while a test drives clmmd. Skipped, with the reason, only when node >= 20
is missing; any other failure to build the stack fails the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.chain import Trader
from tests.e2e.stack import REPO, Stack, StackUnavailable, require_node, running_stack

#: What the harness gives the wallet before the first episode.
WALLET_ETH = 10 * 10**18
WALLET_USDC = 200_000 * 10**6
WALLET_WETH = 60 * 10**18


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        require_node()
    except StackUnavailable as exc:
        pytest.skip(str(exc))
    with running_stack(tmp_path_factory.mktemp("e2e-stack")) as running:
        d = running.deployment
        running.chain.fund(running.wallet, d.deployer, WALLET_ETH, WALLET_USDC, WALLET_WETH)
        yield running


@pytest.fixture
def trader(stack: Stack) -> Iterator[Trader]:
    d = stack.deployment
    swapper = Trader(stack.chain, d.swap_router, d.fee, d.deployer)
    swapper.start()
    yield swapper
    swapper.stop()


def clmmd_env(stack: Stack, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a real-mode clmmd against ``stack`` (short horizon, mock intel)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLMMD_", "GATEWAY_"))}
    env.update(
        {
            "HB_ENV": "real",
            "I_UNDERSTAND_LIVE_RISK": "yes",
            "INTEL_DATA_SOURCE": "mock",
            "CLMMD_DATA_DIR": str(data_dir),
            "GATEWAY_URL": stack.gateway_url,
            "GATEWAY_WALLET_ADDRESS": stack.wallet,
            "CLMMD_MAX_POSITION_USD": "20000",
            "CLMMD_POSITION_SIZE_USD": "6000",
            "CLMMD_HORIZON_HOURS": "0.004",
            "GATEWAY_SAMPLE_INTERVAL_S": "3",
            "GATEWAY_WRITE_TIMEOUT_S": "120",
        }
    )
    env.update(extra)
    return env


def clmmd(
    args: list[str], env: dict[str, str], timeout_s: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "clmmd"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
