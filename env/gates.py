"""Live-risk gates: the pure decision whether a real (live) execution may go ahead.

Every gate must pass; the first one that does not raises :class:`env.base.ExecutionSkipped`
naming it, so the episode is recorded as ``skipped`` with the gate. The order is fixed (mode,
acknowledgement, pool validation, quote, size, wallet funds, allowance) so the operator always
sees the most basic missing precondition first. Every argument is keyword-only and must be
what actually happened in this episode (``pool_validated`` is whether validation returned).
"""

from __future__ import annotations

import math

from clmmd.env.base import ExecutionSkipped

GATE_EXEC_MODE = "EXEC_MODE"
GATE_LIVE_RISK = "I_UNDERSTAND_LIVE_RISK"
GATE_POOL_VALIDATED = "pool_validated"
GATE_QUOTE = "quote"
GATE_MAX_POSITION = "max_position_usd"
GATE_FUNDS = "wallet_funds"
GATE_ALLOWANCE = "allowance"
GATES: tuple[str, ...] = (
    GATE_EXEC_MODE,
    GATE_LIVE_RISK,
    GATE_POOL_VALIDATED,
    GATE_QUOTE,
    GATE_MAX_POSITION,
    GATE_FUNDS,
    GATE_ALLOWANCE,
)


def check_gates(
    *,
    exec_mode: str,
    live_risk_ack: bool,
    pool_validated: bool,
    quote_ok: bool,
    size_usd: float,
    max_position_usd: float,
    funds_short: tuple[str, ...] = (),
    allowance_missing: tuple[str, ...] = (),
) -> None:
    """Return when every gate passes; else raise ``ExecutionSkipped(gate, why)``.

    ``size_usd`` is the size that would actually be committed (after the risk scalar, and at
    least the quote's worst case); it must be finite, positive and at most ``max_position_usd``.
    """
    if exec_mode != "real":
        raise ExecutionSkipped(
            GATE_EXEC_MODE, f"EXEC_MODE is {exec_mode!r}; live execution needs 'real'"
        )
    if not live_risk_ack:
        raise ExecutionSkipped(
            GATE_LIVE_RISK, "I_UNDERSTAND_LIVE_RISK=yes is not set; nothing is sent live without it"
        )
    if not pool_validated:
        raise ExecutionSkipped(GATE_POOL_VALIDATED, "the pool has not passed validation")
    if not quote_ok:
        raise ExecutionSkipped(GATE_QUOTE, "no successful quote for this range in this episode")
    if not (math.isfinite(max_position_usd) and max_position_usd > 0):
        raise ExecutionSkipped(
            GATE_MAX_POSITION, f"max_position_usd={max_position_usd!r} is not a positive limit"
        )
    if not (math.isfinite(size_usd) and size_usd > 0):
        raise ExecutionSkipped(GATE_MAX_POSITION, f"size_usd={size_usd!r} is not a positive size")
    if size_usd > max_position_usd:
        raise ExecutionSkipped(
            GATE_MAX_POSITION,
            f"size ${size_usd:,.2f} exceeds max_position_usd ${max_position_usd:,.2f}",
        )
    if funds_short:
        raise ExecutionSkipped(GATE_FUNDS, "wallet is short: " + "; ".join(funds_short))
    if allowance_missing:
        raise ExecutionSkipped(
            GATE_ALLOWANCE,
            "the position manager may not take "
            + ", ".join(allowance_missing)
            + " and GATEWAY_APPROVAL_POLICY is 'never': approve it through Gateway first",
        )
