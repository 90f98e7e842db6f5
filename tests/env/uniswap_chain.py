"""The real Uniswap V3 bytecode on an in-process EVM (web3 + eth-tester[py-evm]).

The contracts are npm's compiled artifacts, ``@uniswap/v3-core@1.0.1`` (pool, factory) and
``@uniswap/v3-periphery@1.4.4`` (NonfungiblePositionManager, SwapRouter; its dependency
``@uniswap/v2-core`` brings a plain ERC20 for the two test tokens). :func:`uniswap_modules`
installs them once with the machine's npm into a cache outside the repository
(``$CLMMD_NPM_CACHE``, else ``$XDG_CACHE_HOME/clmmd`` or ``~/.cache/clmmd``); tests skip with
the reason when npm, the registry or web3 are unavailable, unless ``CLMMD_REQUIRE_EVM=1``
(CI) makes that a failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clmmd.env.base import PoolSpec

PACKAGES = ("@uniswap/v3-core@1.0.1", "@uniswap/v3-periphery@1.4.4")
FEE = 500
SPACING = 10
MAX_UINT256 = 2**256 - 1
DEADLINE = 2**40
DUMMY = "0x" + "00" * 19 + "01"  # WETH9 and the token descriptor: never called here


def _unavailable(reason: str) -> None:
    if os.environ.get("CLMMD_REQUIRE_EVM") == "1":
        pytest.fail(f"CLMMD_REQUIRE_EVM=1 but {reason}")
    pytest.skip(reason)


def cache_dir() -> Path:
    explicit = os.environ.get("CLMMD_NPM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clmmd" / "npm-uniswap-v3-core-1.0.1-periphery-1.4.4"


def uniswap_modules() -> Path:
    """``node_modules`` holding the pinned Uniswap packages (installed on first use)."""
    folder = cache_dir()
    modules = folder / "node_modules"
    marker = folder / ".installed"
    if marker.exists():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not on PATH: cannot install the Uniswap V3 artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time across processes
        if not marker.exists():
            done = subprocess.run(
                [
                    str(npm),
                    "install",
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                    "--prefix",
                    str(folder),
                    *PACKAGES,
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                _unavailable(f"npm install {' '.join(PACKAGES)} failed: {done.stderr[-500:]}")
            marker.write_text(" ".join(PACKAGES) + "\n")
    return modules


def artifact(modules: Path, relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((modules / relative).read_text())
    return data


@dataclass(frozen=True)
class SwapOrder:
    """One SwapRouter call: exact input or output, optional price limit (0 = none)."""

    zero_for_one: bool
    exact_input: bool
    amount: int
    sqrt_price_limit_x96: int = 0


class UniswapChain:
    """Two 18-decimal tokens, a 0.05 % pool, the position manager and the router."""

    def __init__(self, sqrt_price_x96: int) -> None:
        try:
            from eth_tester import EthereumTester, PyEVMBackend
            from web3 import EthereumTesterProvider, Web3
        except ImportError as exc:
            _unavailable(f"web3 / eth-tester[py-evm] not installed: {exc}")
        modules = uniswap_modules()
        params = PyEVMBackend.generate_genesis_params(overrides={"gas_limit": 30_000_000})
        self.tester = EthereumTester(PyEVMBackend(genesis_parameters=params))
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.me = self.w3.eth.accounts[0]
        erc20 = artifact(modules, "@uniswap/v2-core/build/ERC20.json")
        tokens = [self._deploy(erc20, 10**40) for _ in range(2)]
        tokens.sort(key=lambda c: int(c.address, 16))
        self.token0, self.token1 = tokens
        core = "@uniswap/v3-core/artifacts/contracts/"
        periphery = "@uniswap/v3-periphery/artifacts/contracts/"
        factory = self._deploy(
            artifact(modules, core + "UniswapV3Factory.sol/UniswapV3Factory.json")
        )
        self.npm = self._deploy(
            artifact(
                modules,
                periphery + "NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
            ),
            factory.address,
            DUMMY,
            DUMMY,
        )
        self.router = self._deploy(
            artifact(modules, periphery + "SwapRouter.sol/SwapRouter.json"), factory.address, DUMMY
        )
        for token in tokens:
            for spender in (self.npm.address, self.router.address):
                self._tx(token.functions.approve(spender, MAX_UINT256))
        self._tx(
            self.npm.functions.createAndInitializePoolIfNecessary(
                self.token0.address, self.token1.address, FEE, sqrt_price_x96
            )
        )
        pool_abi = artifact(modules, core + "UniswapV3Pool.sol/UniswapV3Pool.json")["abi"]
        address = factory.functions.getPool(self.token0.address, self.token1.address, FEE).call()
        self.pool = self.w3.eth.contract(address=address, abi=pool_abi)

    def _deploy(self, art: dict[str, Any], *args: Any) -> Any:
        code = (
            art["bytecode"]
            if isinstance(art["bytecode"], str)
            else art["evm"]["bytecode"]["object"]
        )
        code = code if code.startswith("0x") else "0x" + code
        tx = (
            self.w3.eth.contract(abi=art["abi"], bytecode=code)
            .constructor(*args)
            .transact({"from": self.me, "gas": 29_000_000})
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt.status == 1
        return self.w3.eth.contract(address=receipt.contractAddress, abi=art["abi"])

    def _tx(self, call: Any) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            call.transact({"from": self.me, "gas": 25_000_000})
        )
        assert receipt.status == 1, receipt
        return receipt

    # --- state ---------------------------------------------------------------------------------

    def snapshot(self) -> Any:
        return self.tester.take_snapshot()

    def revert(self, snapshot: Any) -> None:
        self.tester.revert_to_snapshot(snapshot)

    def slot0(self) -> tuple[int, int]:
        sqrt_price, tick, *_ = self.pool.functions.slot0().call()
        return int(sqrt_price), int(tick)

    def pool_spec(self) -> PoolSpec:
        """The pool as clmmd describes one: token0 "TKA" counts as the $1 token."""
        return PoolSpec(
            address=self.pool.address,
            pair="TKB-TKA",
            token0="TKA",
            token1="TKB",
            decimals0=18,
            decimals1=18,
            fee_pips=FEE,
            stable_token=0,
            reference_price_usd=1.0,
        )

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def advance_to(self, unix_s: int) -> None:
        """Mine the next block at ``unix_s`` (later blocks follow it by a second each, so a
        run that starts from the same time is the same chain, block for block)."""
        self.tester.time_travel(unix_s)

    # --- positions -----------------------------------------------------------------------------

    def mint(self, lower: int, upper: int, amount0: int, amount1: int) -> tuple[int, int, int, int]:
        """``(token_id, liquidity, amount0, amount1)`` of a new NonfungiblePositionManager
        position."""
        receipt = self._tx(
            self.npm.functions.mint(
                (
                    self.token0.address,
                    self.token1.address,
                    FEE,
                    lower,
                    upper,
                    amount0,
                    amount1,
                    0,
                    0,
                    self.me,
                    DEADLINE,
                )
            )
        )
        from web3.logs import DISCARD

        (event,) = self.npm.events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)
        args = event["args"]
        return (
            int(args["tokenId"]),
            int(args["liquidity"]),
            int(args["amount0"]),
            int(args["amount1"]),
        )

    def collectable(self, token_id: int) -> tuple[int, int]:
        """What ``collect`` would pay now (a static call: the state does not change)."""
        amount0, amount1 = self.npm.functions.collect(
            (token_id, self.me, 2**128 - 1, 2**128 - 1)
        ).call({"from": self.me})
        return int(amount0), int(amount1)

    def decrease(self, token_id: int, liquidity: int) -> tuple[int, int]:
        """``decreaseLiquidity``'s amounts (what burning ``liquidity`` returns)."""
        receipt = self._tx(
            self.npm.functions.decreaseLiquidity((token_id, liquidity, 0, 0, DEADLINE))
        )
        from web3.logs import DISCARD

        (event,) = self.npm.events.DecreaseLiquidity().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["amount0"]), int(event["args"]["amount1"])

    # --- swaps ---------------------------------------------------------------------------------

    def _router_call(self, order: SwapOrder) -> Any:
        token_in, token_out = (
            (self.token0.address, self.token1.address)
            if order.zero_for_one
            else (self.token1.address, self.token0.address)
        )
        if order.exact_input:
            return "exactInputSingle", (
                token_in,
                token_out,
                FEE,
                self.me,
                DEADLINE,
                order.amount,
                0,
                order.sqrt_price_limit_x96,
            )
        return "exactOutputSingle", (
            token_in,
            token_out,
            FEE,
            self.me,
            DEADLINE,
            order.amount,
            MAX_UINT256 >> 1,
            order.sqrt_price_limit_x96,
        )

    def swap_batch(self, orders: list[SwapOrder]) -> None:
        """All ``orders`` in one transaction (SwapRouter.multicall): one block, many events."""
        calls = [
            self.router.encode_abi(name, args=[params])
            for name, params in (self._router_call(o) for o in orders)
        ]
        self._tx(self.router.functions.multicall(calls))

    def swap_events(self, from_block: int) -> list[tuple[int, int, int, int, int, int, int, int]]:
        """The pool's Swap events since ``from_block`` as history rows:
        ``(block_time, block_number, log_index, amount0, amount1, sqrt_price_x96, liquidity,
        tick)``."""
        rows = []
        times: dict[int, int] = {}
        for log in self.pool.events.Swap().get_logs(from_block=from_block):
            block = int(log["blockNumber"])
            if block not in times:
                times[block] = int(self.w3.eth.get_block(block)["timestamp"])
            a = log["args"]
            rows.append(
                (
                    times[block],
                    block,
                    int(log["logIndex"]),
                    int(a["amount0"]),
                    int(a["amount1"]),
                    int(a["sqrtPriceX96"]),
                    int(a["liquidity"]),
                    int(a["tick"]),
                )
            )
        return rows
