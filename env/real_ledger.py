"""What one live episode moved, in the pool's token0/token1 orientation.

Every transaction of the episode (approvals included) is one :class:`TxRecord`: its hash, what
it was, its gas and where each number came from (``receipt`` when read from the chain node,
``gateway`` when only Gateway's answer was available). Amounts are human units of token0 and
token1 — never Gateway's base/quote, whose meaning depends on the route (see
:mod:`env.gateway_models`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TxKind = Literal["approve", "open", "close", "remove", "collect"]
Source = Literal["receipt", "gateway"]


@dataclass
class TxRecord:
    """One transaction of the episode."""

    tx_hash: str
    kind: TxKind
    gas_native: float
    source: Source
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "hash": self.tx_hash,
            "kind": self.kind,
            "gas_native": self.gas_native,
            "source": self.source,
            **self.detail,
        }


@dataclass
class Ledger:
    """The episode's transactions and token flows (token0, token1; human units)."""

    transactions: list[TxRecord] = field(default_factory=list)
    added: list[float] = field(default_factory=lambda: [0.0, 0.0])
    removed: list[float] = field(default_factory=lambda: [0.0, 0.0])
    fees: list[float] = field(default_factory=lambda: [0.0, 0.0])
    #: Where the amounts came from: receipts (exact) or Gateway's answers (estimates).
    amount_sources: set[str] = field(default_factory=set)

    @property
    def gas_native(self) -> float:
        return sum(t.gas_native for t in self.transactions)

    @property
    def hashes(self) -> list[str]:
        return [t.tx_hash for t in self.transactions]

    def record(self, tx: TxRecord) -> None:
        self.transactions.append(tx)

    def add(self, which: str, amounts: tuple[float, float], source: str) -> None:
        """Add ``amounts`` (token0, token1) to ``added``/``removed``/``fees``."""
        target: list[float] = getattr(self, which)
        target[0] += amounts[0]
        target[1] += amounts[1]
        self.amount_sources.add(source)

    @property
    def accounting(self) -> str:
        """``receipts`` when every amount came from receipts, else ``gateway_answers``."""
        return "receipts" if self.amount_sources <= {"receipt"} else "gateway_answers"
