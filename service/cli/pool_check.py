"""``clmmd validate-pool``: check the pool of one proposal.json, one printed line per check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from clmmd.artifacts.base.clock import SystemClock
from clmmd.env.base import PoolValidationError
from clmmd.env.gateway import GatewayClient, Venue, client_from_settings
from clmmd.env.gateway_errors import GatewayError
from clmmd.env.validator import (
    load_proposal,
    normalise_address,
    spec_from_proposal,
    validate_chain_network,
    validate_pool,
)


async def validate_pool_command(
    proposal_path: Path,
    run_id: str,
    episode_id: str,
    exec_mode: str,
    settings_like: Any,
    *,
    out: Callable[[str], None] = print,
    client: GatewayClient | None = None,
) -> int:
    """Validate the pool of one proposal.json, printing one line per check.

    Exit status: 0 every check passed; 1 a check failed (or Gateway could not be asked);
    2 bad input (unreadable proposal, ids not matching it, no proposal made, bad exec mode).
    In mock mode only the offline checks run (address, chain, network) and no Gateway client
    is created. ``client`` is for tests; otherwise one is built from ``settings_like``.
    """
    if exec_mode not in ("mock", "real"):
        out(f"bad input: exec_mode must be mock or real, got {exec_mode!r}")
        return 2
    try:
        proposal = load_proposal(proposal_path)
    except (OSError, ValueError) as exc:
        out(f"bad input: cannot read {proposal_path}: {exc}")
        return 2
    for key, expected in (("run_id", run_id), ("episode_id", episode_id)):
        if proposal.get(key) != expected:
            out(f"bad input: proposal {key} is {proposal.get(key)!r}, expected {expected!r}")
            return 2
    if proposal.get("proposed") is False:
        out(f"bad input: no proposal was made: {proposal.get('reason')}")
        return 2
    venue = Venue(
        chain=str(proposal.get("chain") or "ethereum"),
        network=str(proposal.get("network") or "mainnet"),
        connector=str(getattr(settings_like, "gateway_connector", "uniswap")),
    )

    def report(field: str, ok: bool, detail: str) -> None:
        out(f"{'ok  ' if ok else 'FAIL'} {field}: {detail}")

    try:
        report("address", True, normalise_address(str(proposal.get("pool_address") or "")))
        validate_chain_network(venue.chain, venue.network, venue.connector)
        report("chain", True, venue.chain)
        report("network", True, venue.network)
    except PoolValidationError as exc:
        report(exc.field, False, str(exc).split(": ", 1)[-1])
        return 1
    if exec_mode == "mock":
        out("skip gateway checks (pool, pair, fee_tier): exec_mode=mock, Gateway is not used")
        return 0

    def report_remote(field: str, ok: bool, detail: str) -> None:
        if field not in ("address", "chain", "network"):  # already printed above
            report(field, ok, detail)

    own_client = client is None
    gateway = client or client_from_settings(settings_like, SystemClock())
    try:
        pool = await spec_from_proposal(proposal, gateway, venue)
        await validate_pool(gateway, venue, pool, report_remote)
        return 0
    except PoolValidationError as exc:
        report(exc.field, False, str(exc).split(": ", 1)[-1])
        return 1
    except ValueError as exc:
        report("pool", False, str(exc))
        return 1
    except GatewayError as exc:
        report("gateway", False, str(exc))
        return 1
    finally:
        if own_client:
            await gateway.close()
