"""Ground truth straight from the local chain over JSON-RPC (independent of Gateway and clmmd),
plus the test-chain actions the harness needs (funding, the trader's swaps).

ABI encoding is done by hand for the handful of calls used: every number read here comes from
the chain's own state, receipts and event logs.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from Crypto.Hash import keccak


def topic(signature: str) -> str:
    return "0x" + keccak.new(digest_bits=256, data=signature.encode()).hexdigest()


def selector(signature: str) -> str:
    return topic(signature)[:10]


INCREASE = topic("IncreaseLiquidity(uint256,uint128,uint256,uint256)")
DECREASE = topic("DecreaseLiquidity(uint256,uint128,uint256,uint256)")
COLLECT = topic("Collect(uint256,address,uint256,uint256)")
APPROVAL = topic("Approval(address,address,uint256)")
MAX_UINT128 = 2**128 - 1


def word(value: int | str) -> str:
    if isinstance(value, str):
        return value.lower().removeprefix("0x").rjust(64, "0")
    return f"{value:064x}"


def words(data: str) -> list[int]:
    body = data.removeprefix("0x")
    return [int(body[i : i + 64], 16) for i in range(0, len(body), 64)]


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block: int
    sender: str
    status: int
    gas_used: int
    effective_gas_price: int
    logs: list[dict[str, Any]]

    @property
    def gas_wei(self) -> int:
        return self.gas_used * self.effective_gas_price


class Chain:
    """A JSON-RPC client for the local anvil chain with the Uniswap deployment's addresses."""

    def __init__(self, rpc: str, usdc: str, weth: str, position_manager: str) -> None:
        self.rpc = rpc
        self.usdc = usdc
        self.weth = weth
        self.npm = position_manager
        self._lock = threading.Lock()
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        with self._lock:
            self._id += 1
            payload = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        request = urllib.request.Request(
            self.rpc, json.dumps(payload).encode(), {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            reply = json.loads(answer.read())
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    # --- reads ---

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber", []), 16)

    def eth_call(self, to: str, data: str, block: int | str = "latest") -> str:
        tag = hex(block) if isinstance(block, int) else block
        return str(self.call("eth_call", [{"to": to, "data": data}, tag]))

    def token_balance(self, token: str, owner: str, block: int | str = "latest") -> int:
        return words(self.eth_call(token, selector("balanceOf(address)") + word(owner), block))[0]

    def eth_balance(self, owner: str, block: int | str = "latest") -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.call("eth_getBalance", [owner, tag]), 16)

    def wallet(self, owner: str, block: int | str = "latest") -> tuple[int, int, int]:
        """(USDC raw, WETH raw, ETH wei) held by ``owner`` at ``block``."""
        return (
            self.token_balance(self.usdc, owner, block),
            self.token_balance(self.weth, owner, block),
            self.eth_balance(owner, block),
        )

    def sqrt_price_x96(self, pool: str, block: int | str = "latest") -> int:
        return words(self.eth_call(pool, selector("slot0()"), block))[0]

    def weth_price_usdc(self, pool: str, block: int | str = "latest") -> float:
        """USDC per WETH at ``block`` (token0 USDC 6 decimals, token1 WETH 18)."""
        raw = (self.sqrt_price_x96(pool, block) / 2**96) ** 2  # WETH raw per USDC raw
        return 1.0 / (raw * 10.0 ** (6 - 18))

    def positions_of(self, owner: str) -> list[int]:
        count = words(self.eth_call(self.npm, selector("balanceOf(address)") + word(owner)))[0]
        sig = selector("tokenOfOwnerByIndex(address,uint256)")
        return [
            words(self.eth_call(self.npm, sig + word(owner) + word(i)))[0] for i in range(count)
        ]

    def position_liquidity(self, token_id: int) -> int:
        return words(self.eth_call(self.npm, selector("positions(uint256)") + word(token_id)))[7]

    def receipt(self, tx_hash: str) -> Receipt:
        raw = self.call("eth_getTransactionReceipt", [tx_hash])
        return Receipt(
            tx_hash=raw["transactionHash"],
            block=int(raw["blockNumber"], 16),
            sender=raw["from"].lower(),
            status=int(raw["status"], 16),
            gas_used=int(raw["gasUsed"], 16),
            effective_gas_price=int(raw["effectiveGasPrice"], 16),
            logs=raw["logs"],
        )

    def transactions_from(self, sender: str, first: int, last: int) -> list[str]:
        """Hashes of every transaction ``sender`` sent in blocks ``first..last``."""
        hashes = []
        for number in range(first, last + 1):
            block = self.call("eth_getBlockByNumber", [hex(number), True])
            hashes += [
                tx["hash"] for tx in block["transactions"] if tx["from"].lower() == sender.lower()
            ]
        return hashes

    def position_events(self, event: str, token_id: int) -> list[tuple[int, int]]:
        """(amount0, amount1) of every ``event`` the position manager logged for ``token_id``."""
        logs = self.call(
            "eth_getLogs",
            [{"address": self.npm, "fromBlock": "0x0", "topics": [event, "0x" + word(token_id)]}],
        )
        amounts = []
        for log in logs:
            values = words(log["data"])
            amounts.append((values[1], values[2]))
        return amounts

    def npm_amounts(self, receipt: Receipt, event: str) -> tuple[int, int]:
        """Σ (amount0, amount1) of the position manager's ``event`` logs in ``receipt``."""
        total0 = total1 = 0
        for log in receipt.logs:
            if log["address"].lower() == self.npm.lower() and log["topics"][0] == event:
                values = words(log["data"])
                amount0, amount1 = (values[1], values[2]) if event != COLLECT else values[1:3]
                total0 += amount0
                total1 += amount1
        return total0, total1

    # --- test-chain actions (anvil only) ---

    def send(self, sender: str, to: str, data: str, value: int = 0) -> Receipt:
        tx = {"from": sender, "to": to, "data": data, "value": hex(value), "gas": hex(1_500_000)}
        tx_hash = self.call("eth_sendTransaction", [tx])
        for _ in range(200):  # automine answers at once; a busy machine may lag a little
            if self.call("eth_getTransactionReceipt", [tx_hash]) is not None:
                break
            time.sleep(0.05)
        receipt = self.receipt(tx_hash)
        if receipt.status != 1:
            raise RuntimeError(f"test transaction to {to} reverted")
        return receipt

    def fund(self, owner: str, deployer: str, eth: int, usdc: int, weth: int) -> None:
        """Give ``owner`` ETH (wei), USDC and WETH (raw) without sending from ``owner``."""
        self.call("anvil_setBalance", [owner, hex(eth)])
        self.send(deployer, self.usdc, selector("mint(address,uint256)") + word(owner) + word(usdc))
        self.send(deployer, self.weth, selector("deposit()"), value=weth)
        self.send(
            deployer, self.weth, selector("transfer(address,uint256)") + word(owner) + word(weth)
        )


class Trader(threading.Thread):
    """Swaps through the pool both ways (SwapRouter v1) every ``interval_s`` until stopped, so
    price moves and fees accrue while episodes run."""

    def __init__(
        self, chain: Chain, router: str, fee: int, deployer: str, interval_s: float = 0.5
    ) -> None:
        super().__init__(name="e2e-trader", daemon=True)
        self.chain = chain
        self.router = router
        self.fee = fee
        self.interval_s = interval_s
        self.swaps = 0
        self.error: Exception | None = None
        self._halt = threading.Event()
        accounts = chain.call("eth_accounts", [])
        self.address = accounts[3]
        chain.fund(self.address, deployer, 10**24, 10**15 * 10**6, 5_000 * 10**18)
        approve = selector("approve(address,uint256)")
        for token in (chain.usdc, chain.weth):
            chain.send(self.address, token, approve + word(router) + word(2**256 - 1))

    def swap(self, weth_in: bool, amount: int) -> None:
        token_in, token_out = (
            (self.chain.weth, self.chain.usdc) if weth_in else (self.chain.usdc, self.chain.weth)
        )
        data = (
            selector(
                "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"
            )
            + word(token_in)
            + word(token_out)
            + word(self.fee)
            + word(self.address)
            + word(2**40)
            + word(amount)
            + word(0)
            + word(0)
        )
        self.chain.send(self.address, self.router, data)
        self.swaps += 1

    def run(self) -> None:
        weth_in = True
        try:
            while not self._halt.wait(self.interval_s):
                # ~$60k each way: the price swings by a few tenths of a percent around its level.
                self.swap(weth_in, 20 * 10**18 if weth_in else 60_000 * 10**6)
                weth_in = not weth_in
        except Exception as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        if self.error is not None:
            raise RuntimeError(f"trader failed: {self.error}") from self.error
