"""Restart reconciliation: positions that episodes opened and a stopped process may have left.

An episode that opened a position logs ``live_opened`` with the position id. When the process
ends before the episode closed it (kill -9, power loss, a stop past the drain deadline), the next
start hands each such claim to :func:`settle_claim`, which reads the position through Gateway and
closes it when it still holds anything. The returned record says what was found and done; the
service writes it into the episode's folder as ``reconciliation.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from clmmd.env.base import PoolSpec
from clmmd.env.gateway_errors import GatewayError
from clmmd.env.real import RealClmmEnv
from clmmd.env.real_ledger import Ledger
from clmmd.env.real_positions import LiveExecutionError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Claim:
    """A position an episode opened: where it was logged, its id and its pool."""

    episode: str
    position: str
    pool: PoolSpec


async def settle_claim(env: RealClmmEnv, claim: Claim) -> dict[str, Any]:
    """Find ``claim``'s position on chain (through Gateway) and close it if it holds anything.

    ``action`` is ``none`` (already closed or empty), ``closed`` (with the transactions, the
    amounts and the gas) or ``left_open`` (with the reason: the close failed or Gateway could
    not be asked; the position is named so the operator can act).
    """
    record: dict[str, Any] = {"position_id": claim.position, "pool_address": claim.pool.address}
    try:
        owned = await env.positions.owned(claim.pool)
    except GatewayError as exc:
        return {
            **record,
            "action": "left_open",
            "found": None,
            "reason": f"Gateway could not be asked, nothing was checked or sent: {exc}",
        }
    listed = any(p.address == claim.position for p in owned)
    state = await env.positions.state(claim.pool, claim.position)
    if not listed and state is None:
        # positions-owned answered, so Gateway is up: position-info failing means burned.
        return {
            **record,
            "action": "none",
            "found": False,
            "reason": "the position no longer exists (burned: closed before the stop)",
        }
    if not listed and state is not None and state.is_empty:
        return {
            **record,
            "action": "none",
            "found": True,
            "reason": "the position holds no liquidity and owes nothing (closed before the stop)",
        }
    ledger = Ledger()
    held0, held1 = state.token_amounts() if state is not None else (float("nan"),) * 2
    try:
        method = await env.positions.close(claim.pool, claim.position, ledger)
    except (GatewayError, LiveExecutionError) as exc:
        log.error(
            "live_reconcile_close_failed",
            position=claim.position,
            error=str(exc),
            hint="close the position in Gateway by hand; reconciliation.json names it",
        )
        return {
            **record,
            "action": "left_open",
            "found": True,
            "token0_held": held0,
            "token1_held": held1,
            "reason": f"closing it failed: {exc}",
            "transactions": [t.as_json() for t in ledger.transactions],
        }
    return {
        **record,
        "action": "closed",
        "found": True,
        "close_method": method,
        "token0_held": held0,
        "token1_held": held1,
        "token0_removed": ledger.removed[0],
        "token1_removed": ledger.removed[1],
        "token0_fees": ledger.fees[0],
        "token1_fees": ledger.fees[1],
        "gas_paid_native": ledger.gas_native,
        "accounting": ledger.accounting,
        "transactions": [t.as_json() for t in ledger.transactions],
    }
