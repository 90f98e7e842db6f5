"""Transaction receipts read straight from the chain node (read-only JSON-RPC).

Gateway's answers do not say what a transaction really did: its ``fee`` is missing for writes
confirmed by polling, poll's ``txStatus`` 1 means *mined* (a reverted receipt too), and the
amounts it reports for close/remove/collect are computed before the transaction from
``tokensOwed`` (stale until liquidity is touched). The receipt is the truth: ``status``,
``gasUsed × effectiveGasPrice``, and the position manager's ``IncreaseLiquidity``,
``DecreaseLiquidity`` and ``Collect`` events, whose amounts are in token0/token1 raw units.

The node URL is configured (``CLMMD_CHAIN_RPC_URL``) or taken from Gateway's
``/chains/{chain}/status`` ``rpcUrl``. Such URLs often embed a provider key: the URL is never
logged or recorded, only where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import aiohttp
import orjson
import structlog
from Crypto.Hash import keccak
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from clmmd.artifacts.base.clock import Clock

log = structlog.get_logger(__name__)


def _topic(signature: str) -> str:
    return "0x" + keccak.new(digest_bits=256, data=signature.encode()).hexdigest()


INCREASE_LIQUIDITY = _topic("IncreaseLiquidity(uint256,uint128,uint256,uint256)")
DECREASE_LIQUIDITY = _topic("DecreaseLiquidity(uint256,uint128,uint256,uint256)")
COLLECT = _topic("Collect(uint256,address,uint256,uint256)")

HexInt = Annotated[int, BeforeValidator(lambda v: int(v, 16) if isinstance(v, str) else v)]


class ReceiptUnavailable(Exception):
    """The node could not be asked (no URL, unreachable, or a malformed answer)."""


class ReceiptLog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    address: str
    topics: list[str]
    data: str

    def words(self) -> list[int]:
        body = self.data.removeprefix("0x")
        return [int(body[i : i + 64], 16) for i in range(0, len(body), 64)]


class Receipt(BaseModel):
    """``eth_getTransactionReceipt``: the fields real-mode accounting reads."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    transaction_hash: str = Field(alias="transactionHash")
    block_number: HexInt = Field(alias="blockNumber")
    status: HexInt
    gas_used: HexInt = Field(alias="gasUsed")
    effective_gas_price: HexInt = Field(alias="effectiveGasPrice")
    logs: list[ReceiptLog] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == 1

    @property
    def gas_native(self) -> float:
        """Gas paid in the native token (ETH): gasUsed × effectiveGasPrice / 1e18."""
        return self.gas_used * self.effective_gas_price / 1e18

    def position_flows(self, token_id: str | None) -> PositionFlows:
        """Σ of the position manager's events for ``token_id`` (any position when ``None``)."""
        totals = {INCREASE_LIQUIDITY: [0, 0], DECREASE_LIQUIDITY: [0, 0], COLLECT: [0, 0]}
        ids: list[int] = []
        for entry in self.logs:
            if len(entry.topics) < 2 or entry.topics[0] not in totals:
                continue
            event_id = int(entry.topics[1], 16)
            if token_id is not None and str(event_id) != str(token_id):
                continue
            values = entry.words()
            # Increase/Decrease carry (liquidity, amount0, amount1), Collect (recipient, a0, a1).
            totals[entry.topics[0]][0] += values[1]
            totals[entry.topics[0]][1] += values[2]
            if event_id not in ids:
                ids.append(event_id)
        return PositionFlows(
            token_ids=tuple(ids),
            increased=(totals[INCREASE_LIQUIDITY][0], totals[INCREASE_LIQUIDITY][1]),
            decreased=(totals[DECREASE_LIQUIDITY][0], totals[DECREASE_LIQUIDITY][1]),
            collected=(totals[COLLECT][0], totals[COLLECT][1]),
        )


@dataclass(frozen=True)
class PositionFlows:
    """Raw token0/token1 amounts a transaction moved for a position (from its events).

    ``collected − decreased`` is the fee part of what left the pool: ``Collect`` pays out the
    principal that ``DecreaseLiquidity`` freed plus every fee owed.
    """

    token_ids: tuple[int, ...]
    increased: tuple[int, int]
    decreased: tuple[int, int]
    collected: tuple[int, int]

    @property
    def fees(self) -> tuple[int, int]:
        return (
            max(self.collected[0] - self.decreased[0], 0),
            max(self.collected[1] - self.decreased[1], 0),
        )


class ChainReceipts:
    """Reads receipts from one node. ``url`` is kept private (it may hold a provider key)."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        source: str,
        timeout_s: float = 15.0,
        attempts: int = 5,
        retry_interval_s: float = 1.0,
    ) -> None:
        self._url = url
        self._clock = clock
        self.source = source
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._retry_interval_s = retry_interval_s
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ChainReceipts(source={self.source!r})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, params: list[Any]) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        try:
            async with self._session.post(
                self._url,
                data=orjson.dumps(payload),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            ) as response:
                body = orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError) as exc:
            # The exception text may contain the URL: name only its type.
            raise ReceiptUnavailable(f"node unreachable ({type(exc).__name__})") from None
        if not isinstance(body, dict) or "error" in body:
            error = body.get("error") if isinstance(body, dict) else body
            raise ReceiptUnavailable(f"{method}: node answered an error: {error!r:.200}")
        return body.get("result")

    async def minted_in(self, token_id: str) -> str | None:
        """Hash of the transaction that minted position ``token_id`` (its first
        IncreaseLiquidity log), for an open whose answer carried no hash."""
        topic = "0x" + f"{int(token_id):064x}"
        logs = await self._call(
            "eth_getLogs", [{"fromBlock": "earliest", "topics": [INCREASE_LIQUIDITY, topic]}]
        )
        if not isinstance(logs, list) or not logs or not isinstance(logs[0], dict):
            return None
        tx_hash = logs[0].get("transactionHash")
        return str(tx_hash) if tx_hash else None

    async def receipt(self, tx_hash: str) -> Receipt:
        """The mined receipt of ``tx_hash``, waiting a little for a node that lags Gateway's."""
        for attempt in range(1, self._attempts + 1):
            raw = await self._call("eth_getTransactionReceipt", [tx_hash])
            if raw is not None:
                try:
                    return Receipt.model_validate(raw)
                except ValidationError as exc:
                    raise ReceiptUnavailable(f"malformed receipt for {tx_hash}: {exc}") from None
            if attempt < self._attempts:
                await self._clock.sleep(self._retry_interval_s)
        raise ReceiptUnavailable(f"no receipt for {tx_hash} after {self._attempts} reads")


class ReceiptSource:
    """Where receipts come from: the configured node URL, else the one Gateway reports in
    ``/chains/{chain}/status``, found once. ``receipt()`` answers ``None`` (logged) when no
    node can be read, and callers fall back to Gateway's answers."""

    def __init__(
        self,
        client: GatewayStatusReader,
        venue: Any,
        clock: Clock,
        configured_url: str | None = None,
    ) -> None:
        self._client = client
        self._venue = venue
        self._clock = clock
        self._configured_url = configured_url
        self._reader: ChainReceipts | None = None
        self._looked = False

    @property
    def source(self) -> str | None:
        """``configured`` / ``gateway_status`` once a node was found, else ``None``."""
        return self._reader.source if self._reader is not None else None

    async def reader(self) -> ChainReceipts | None:
        if self._reader is None and not self._looked:
            self._looked = True
            if self._configured_url:
                self._reader = ChainReceipts(self._configured_url, self._clock, source="configured")
            else:
                try:
                    status = await self._client.chain_status(self._venue)
                except Exception as exc:  # any failure only means "no receipts"
                    log.warning("receipts_unavailable", reason=f"status: {type(exc).__name__}")
                    return None
                if status.rpc_url and status.rpc_url.startswith(("http://", "https://")):
                    self._reader = ChainReceipts(
                        status.rpc_url, self._clock, source="gateway_status"
                    )
                else:
                    log.warning("receipts_unavailable", reason="Gateway reports no node URL")
        return self._reader

    async def receipt(self, tx_hash: str) -> Receipt | None:
        reader = await self.reader()
        if reader is None:
            return None
        try:
            return await reader.receipt(tx_hash)
        except ReceiptUnavailable as exc:
            log.warning("receipt_unavailable", tx=tx_hash, reason=str(exc))
            return None

    async def minted_in(self, token_id: str) -> str | None:
        """The hash that minted ``token_id``, ``None`` (logged) when no node can say."""
        reader = await self.reader()
        if reader is None:
            return None
        try:
            return await reader.minted_in(token_id)
        except (ReceiptUnavailable, ValueError) as exc:
            log.warning("mint_lookup_unavailable", position=token_id, reason=str(exc))
            return None

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()


class GatewayStatusReader(Protocol):
    async def chain_status(self, venue: Any) -> Any: ...
