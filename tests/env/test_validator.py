"""Pool validator: EIP-55 (published vectors), chain/network names, Gateway-backed checks, and
(the command's lines and exit codes: tests/service/cli/test_pool_check.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.env.base import KNOWN_POOLS, PoolSpec, PoolValidationError
from clmmd.env.gateway import GatewayClient, Venue
from clmmd.env.validator import (
    normalise_address,
    to_checksum_address,
    validate_chain_network,
    validate_pool,
)
from tests.fakes.gateway_server import FakeGatewayServer, FakePool

#: The test vectors published in EIP-55 (all-caps, all-lower and mixed-case groups).
EIP55_VECTORS = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]
MIXED = EIP55_VECTORS[4:]
USDC_WETH = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_published_vectors_are_their_own_checksum(address: str) -> None:
    assert to_checksum_address(address) == address
    assert to_checksum_address(address.lower()) == address
    assert normalise_address(address) == address


@pytest.mark.parametrize("address", MIXED)
def test_lower_and_upper_case_forms_are_normalised_to_the_checksum(address: str) -> None:
    assert normalise_address(address.lower()) == address
    assert normalise_address("0x" + address[2:].upper()) == address


@pytest.mark.parametrize("address", MIXED)
def test_mixed_case_with_a_wrong_letter_fails_on_address(address: str) -> None:
    i = next(i for i, ch in enumerate(address) if i > 1 and ch.isalpha())
    flipped = address[:i] + address[i].swapcase() + address[i + 1 :]
    with pytest.raises(PoolValidationError) as info:
        normalise_address(flipped)
    assert info.value.field == "address"
    assert "checksum" in str(info.value)


@pytest.mark.parametrize(
    "bad", ["", "0x123", "88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640", "0x" + "g" * 40]
)
def test_malformed_addresses_fail_on_address(bad: str) -> None:
    with pytest.raises(PoolValidationError) as info:
        normalise_address(bad)
    assert info.value.field == "address"


def test_known_pool_addresses_carry_valid_checksums() -> None:
    for spec in KNOWN_POOLS.values():
        assert normalise_address(spec.address) == spec.address


@pytest.mark.parametrize(
    ("chain", "network", "field"),
    [
        ("bitcoin", "mainnet", "chain"),
        ("solana", "mainnet-beta", "chain"),  # uniswap does not serve solana
        ("ethereum", "mainnet-beta", "network"),
        ("ethereum", "goerli", "network"),
    ],
)
def test_wrong_chain_or_network_names_the_field(chain: str, network: str, field: str) -> None:
    with pytest.raises(PoolValidationError) as info:
        validate_chain_network(chain, network, "uniswap")
    assert info.value.field == field


@pytest.mark.parametrize(
    "network", ["mainnet", "arbitrum", "optimism", "base", "polygon", "sepolia"]
)
def test_gateway_ethereum_networks_are_accepted(network: str) -> None:
    validate_chain_network("ethereum", network, "uniswap")


async def test_the_real_pool_passes_every_check(client: GatewayClient) -> None:
    seen: list[str] = []
    validated = await validate_pool(
        client,
        Venue(),
        replace(USDC_WETH, address=USDC_WETH.address.lower()),
        lambda f, ok, d: seen.append(f),
    )
    assert validated.pool.address == USDC_WETH.address  # normalised to the checksum
    assert validated.base_is_token0 is True  # v2.13's pool-info: base = token0 (USDC)
    assert seen == ["address", "chain", "network", "pool", "pair", "fee_tier"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"address": "0x" + "11" * 20}, "pool"),  # Gateway does not know it
        ({"token1": "USDT"}, "pair"),
        ({"token0": "WETH", "token1": "USDC"}, "pair"),  # swapped order
        ({"fee_pips": 3000}, "fee_tier"),
        ({"decimals0": 18}, "pool"),  # price and tick disagree for these decimals
        ({"network": "arbitrum"}, "pool"),  # not in this Gateway's pools on that network
        ({"chain": "solana", "network": "mainnet-beta"}, "chain"),
    ],
)
async def test_each_mismatch_fails_naming_its_field(
    client: GatewayClient, change: dict[str, Any], field: str
) -> None:
    spec: PoolSpec = replace(USDC_WETH, **change)
    venue = Venue(chain=spec.chain, network=spec.network)
    with pytest.raises(PoolValidationError) as info:
        await validate_pool(client, venue, spec)
    assert info.value.field == field


async def test_unknown_pool_fails_on_pool_with_legacy_routes_too(clock: FakeClock) -> None:
    async with FakeGatewayServer(family="legacy") as server:
        server.add_pool(FakePool.usdc_weth())
        async with GatewayClient(clock, server.base_url, read_attempts=1) as c:
            with pytest.raises(PoolValidationError) as info:
                await validate_pool(c, Venue(), replace(USDC_WETH, address="0x" + "22" * 20))
    assert info.value.field == "pool"


# --- validate-pool command ---
