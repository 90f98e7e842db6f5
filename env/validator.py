"""Pool validation before anything executes in real mode, and the ``validate-pool`` command.

Checks, in order, each failure naming its field (:class:`env.base.PoolValidationError`):

1. ``address``  0x + 20 bytes of hex; mixed case must carry a valid EIP-55 checksum; all-lower
   and all-upper are accepted and normalised to the checksummed form;
2. ``chain`` / ``network``  among Gateway's names, and served by the connector;
3. ``pool``  Gateway knows the pool (pool-info answers) and its price agrees with its tick for
   the decimals we hold (so prices we send are oriented and scaled the way Gateway reads them);
4. ``pair``  the pool's two token addresses are the spec's token0/token1, in Uniswap's order;
5. ``fee_tier``  the pool's fee is the spec's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from Crypto.Hash import keccak

from clmmd.env.base import KNOWN_POOLS, TICK_SPACING_BY_FEE, PoolSpec, PoolValidationError
from clmmd.env.gateway import GatewayClient, PoolInfo, Venue
from clmmd.env.gateway_errors import (
    GatewayAuthError,
    GatewayError,
    GatewayNotFound,
    GatewayRateLimited,
    GatewayRouteMissing,
    GatewayUnreachable,
)

_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")

#: Gateway's chain -> network names (src/templates/chains/ethereum/*.yml, solana/*.yml).
GATEWAY_NETWORKS: dict[str, tuple[str, ...]] = {
    "ethereum": (
        "mainnet",
        "sepolia",
        "arbitrum",
        "optimism",
        "base",
        "polygon",
        "bsc",
        "avalanche",
        "celo",
    ),
    "solana": ("mainnet-beta", "devnet"),
}
#: Chains each CLMM connector serves (Uniswap V3 is EVM only).
CONNECTOR_CHAINS: dict[str, tuple[str, ...]] = {"uniswap": ("ethereum",)}

#: Fallback when Gateway cannot resolve a symbol: (network, symbol) -> (address, decimals).
WELL_KNOWN_TOKENS: dict[tuple[str, str], tuple[str, int]] = {
    ("mainnet", "USDC"): ("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", 6),
    ("mainnet", "USDT"): ("0xdAC17F958D2ee523a2206206994597C13D831ec7", 6),
    ("mainnet", "DAI"): ("0x6B175474E89094C44Da98b954EedeAC495271d0F", 18),
    ("mainnet", "WETH"): ("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", 18),
    ("mainnet", "WBTC"): ("0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599", 8),
}
STABLECOINS = frozenset({"USDC", "USDT", "DAI"})
#: How far Gateway's price may sit from the price of its reported tick (a tick is 0.01 %).
PRICE_TICK_TOLERANCE = 0.01

Report = Callable[[str, bool, str], None]


def to_checksum_address(address: str) -> str:
    """EIP-55: uppercase each hex letter whose nibble in keccak256(lowercase hex) is >= 8."""
    if not _HEX40.fullmatch(address):
        raise ValueError(f"not a 0x-prefixed 20-byte hex address: {address!r}")
    lower = address[2:].lower()
    digest = keccak.new(digest_bits=256, data=lower.encode("ascii")).hexdigest()
    return "0x" + "".join(
        ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch for i, ch in enumerate(lower)
    )


def normalise_address(address: str, field: str = "address") -> str:
    """The checksummed form of ``address``; ``PoolValidationError(field)`` when invalid."""
    if not isinstance(address, str) or not _HEX40.fullmatch(address):
        raise PoolValidationError(field, f"not a 0x-prefixed 20-byte hex address: {address!r}")
    checksummed = to_checksum_address(address)
    body = address[2:]
    if body != body.lower() and body != body.upper() and address != checksummed:
        raise PoolValidationError(
            field, f"EIP-55 checksum mismatch: {address} (checksummed: {checksummed})"
        )
    return checksummed


def validate_chain_network(chain: str, network: str, connector: str = "uniswap") -> None:
    """Gateway must know ``chain``/``network`` and ``connector`` must serve ``chain``."""
    if chain not in GATEWAY_NETWORKS:
        raise PoolValidationError(
            "chain", f"unknown chain {chain!r}; Gateway has {sorted(GATEWAY_NETWORKS)}"
        )
    served = CONNECTOR_CHAINS.get(connector)
    if served is not None and chain not in served:
        raise PoolValidationError(
            "chain", f"connector {connector!r} does not serve chain {chain!r}"
        )
    if network not in GATEWAY_NETWORKS[chain]:
        raise PoolValidationError(
            "network",
            f"unknown {chain} network {network!r}; Gateway has {list(GATEWAY_NETWORKS[chain])}",
        )


@dataclass(frozen=True)
class ResolvedToken:
    symbol: str
    address: str
    decimals: int | None
    source: str


async def resolve_token(client: GatewayClient, venue: Venue, symbol: str) -> ResolvedToken:
    """Symbol -> address through Gateway's token list, else the well-known table."""
    try:
        token = await client.token(venue, symbol)
        return ResolvedToken(
            symbol, normalise_address(token.address, "pair"), token.decimals, "gateway"
        )
    except (GatewayNotFound, GatewayRouteMissing):
        pass
    known = WELL_KNOWN_TOKENS.get((venue.network, symbol.upper()))
    if known is None:
        raise PoolValidationError("pair", f"token {symbol!r} is unknown on {venue.chain_network}")
    return ResolvedToken(symbol, known[0], known[1], "well_known")


def human_price_at_tick(pool: PoolSpec, tick: int, base_is_token0: bool) -> float:
    """Quote per base in human units at ``tick`` (Gateway's orientation)."""
    token1_per_token0 = 1.0001**tick * 10.0 ** (pool.decimals0 - pool.decimals1)
    return token1_per_token0 if base_is_token0 else 1.0 / token1_per_token0


@dataclass(frozen=True)
class ValidatedPool:
    pool: PoolSpec
    info: PoolInfo

    @property
    def base_is_token0(self) -> bool:
        return self.info.base_is_token0


def _ok(report: Report | None, field: str, detail: str) -> None:
    if report is not None:
        report(field, True, detail)


async def validate_pool(
    client: GatewayClient, venue: Venue, pool: PoolSpec, report: Report | None = None
) -> ValidatedPool:
    """Run every check; the first failure raises. ``report(field, ok, detail)`` sees passes.

    Gateway being unreachable is not a validation failure: its :class:`GatewayError` propagates.
    """
    address = normalise_address(pool.address)
    _ok(report, "address", address)
    validate_chain_network(pool.chain, pool.network, venue.connector)
    _ok(report, "chain", pool.chain)
    _ok(report, "network", pool.network)
    try:
        info = await client.pool_info(venue, address)
    except (GatewayUnreachable, GatewayRateLimited, GatewayAuthError):
        raise  # says nothing about the pool
    except GatewayError as exc:
        # 404 (unified) or the legacy route's generic 500 "Failed to fetch pool info".
        raise PoolValidationError("pool", f"Gateway does not know pool {address}: {exc}") from exc
    base_is_token0 = info.base_is_token0
    if info.active_tick is not None:
        expected = human_price_at_tick(pool, info.active_tick, base_is_token0)
        if not (
            math.isfinite(info.price)
            and info.price > 0
            and abs(info.price / expected - 1) <= PRICE_TICK_TOLERANCE
        ):
            raise PoolValidationError(
                "pool",
                f"Gateway's price {info.price} disagrees with its tick {info.active_tick} "
                f"(expected {expected:.6g} quote/base): decimals or token order differ",
            )
    _ok(report, "pool", f"known to Gateway, price {info.price:.6g} quote/base")
    token0 = await resolve_token(client, venue, pool.token0)
    token1 = await resolve_token(client, venue, pool.token1)
    wanted = {token0.address.lower(), token1.address.lower()}
    have = {info.base_token_address.lower(), info.quote_token_address.lower()}
    if wanted != have:
        raise PoolValidationError(
            "pair",
            f"pool tokens {sorted(have)} are not {pool.token0}/{pool.token1} {sorted(wanted)}",
        )
    if int(token0.address, 16) > int(token1.address, 16):
        raise PoolValidationError(
            "pair", f"{pool.token0} is token1 of this pool: token0/token1 are swapped in the spec"
        )
    for token, decimals in ((token0, pool.decimals0), (token1, pool.decimals1)):
        if token.decimals is not None and token.decimals != decimals:
            raise PoolValidationError(
                "pair", f"{token.symbol} has {token.decimals} decimals, the spec says {decimals}"
            )
    _ok(report, "pair", f"{pool.token0}/{pool.token1}")
    fee_pips = round(info.fee_pct * 10_000)
    if abs(info.fee_pct * 10_000 - pool.fee_pips) > 0.5:
        raise PoolValidationError(
            "fee_tier",
            f"pool fee is {info.fee_pct}% ({fee_pips} pips), proposal says {pool.fee_pips}",
        )
    _ok(report, "fee_tier", f"{pool.fee_pips} pips")
    return ValidatedPool(replace(pool, address=address), info)


# --- a proposal's pool (what `clmmd validate-pool` checks) ---


def load_proposal(path: Path) -> dict[str, Any]:
    """A proposal.json as a dict (ValueError when it is not a JSON object)."""
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError("proposal.json is not a JSON object")
    return data


async def spec_from_proposal(
    proposal: dict[str, Any], client: GatewayClient | None, venue: Venue
) -> PoolSpec:
    """The pool the proposal names: a known pool (with the proposal's claims laid over it), or
    one built from its pair, with token order and decimals resolved."""
    address = str(proposal.get("pool_address") or "")
    known = KNOWN_POOLS.get(address.lower())
    fee = proposal.get("fee_pips")
    if known is not None:
        return replace(
            known,
            address=address,
            chain=venue.chain,
            network=venue.network,
            fee_pips=int(fee) if isinstance(fee, int) else known.fee_pips,
        )
    pair = str(proposal.get("pair") or "")
    symbols = [s.strip() for s in pair.split("-") if s.strip()]
    if len(symbols) != 2 or not isinstance(fee, int) or fee not in TICK_SPACING_BY_FEE:
        raise ValueError(f"unknown pool {address!r} and no usable pair/fee_pips to check it by")
    if client is None:
        raise ValueError(f"pool {address!r} is not a known pool; its pair needs Gateway")
    a = await resolve_token(client, venue, symbols[0])
    b = await resolve_token(client, venue, symbols[1])
    t0, t1 = sorted((a, b), key=lambda t: int(t.address, 16))
    return PoolSpec(
        address=address,
        pair=pair,
        token0=t0.symbol,
        token1=t1.symbol,
        decimals0=t0.decimals if t0.decimals is not None else 18,
        decimals1=t1.decimals if t1.decimals is not None else 18,
        fee_pips=fee,
        stable_token=0 if t0.symbol.upper() in STABLECOINS else 1,
        reference_price_usd=1.0,
        chain=venue.chain,
        network=venue.network,
    )
