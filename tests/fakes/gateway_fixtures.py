"""The Gateway fixtures several test modules share (loaded from tests/conftest.py).

``gateway`` is a fake Gateway (v2.13 shapes) serving the USDC/WETH 0.05 % pool; a module that
needs other pools or both route families overrides ``gateway`` and keeps ``client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.env.gateway import GatewayClient
from tests.fakes.gateway_server import FakeGatewayServer, FakePool


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGatewayServer]:
    async with FakeGatewayServer() as server:
        server.add_pool(FakePool.usdc_weth())
        yield server


@pytest.fixture
async def client(gateway: FakeGatewayServer, clock: FakeClock) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(clock, gateway.base_url) as c:
        yield c
