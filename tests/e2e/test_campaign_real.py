"""`clmmd campaign --episodes 3` in real mode against the real Gateway and the local chain.

Every number clmmd reports is checked against the chain itself (JSON-RPC, not Gateway, not
clmmd): the wallet's balances before/after each episode, the receipts of every transaction the
wallet sent, and the position manager's DecreaseLiquidity/Collect events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.chain import COLLECT, DECREASE, Trader
from tests.e2e.conftest import clmmd, clmmd_env
from tests.e2e.stack import Stack

VALUE_TOLERANCE = 0.005  # of the deposited value
FEES_TOLERANCE = 0.01
GAS_TOLERANCE = 0.01


def episodes(data_dir: Path) -> list[dict[str, Any]]:
    results = sorted(data_dir.glob("runs/*/episodes/*/result.json"))
    return [json.loads(p.read_text()) for p in results]


def test_three_real_episodes_reconcile_with_the_chain(
    stack: Stack, trader: Trader, tmp_path: Path
) -> None:
    chain, wallet, pool = stack.chain, stack.wallet, stack.deployment.pool
    first_block = chain.block_number()
    data = tmp_path / "data"
    env = clmmd_env(stack, data)
    run = clmmd(["campaign", "--episodes", "3"], env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    trader_swaps = trader.swaps
    last_block = chain.block_number()

    results = episodes(data)
    failures = [p.read_text()[:1500] for p in data.glob("runs/*/episodes/*/failure.json")]
    assert len(results) == 3, failures
    assert all(r["status"] == "success" for r in results), [r.get("reason") for r in results]
    assert chain.positions_of(wallet) == [] or all(
        chain.position_liquidity(t) == 0 for t in chain.positions_of(wallet)
    ), "a position was left open"
    assert trader_swaps >= 6

    # Every transaction the wallet sent belongs to exactly one episode's record.
    sent = chain.transactions_from(wallet, first_block + 1, last_block)
    recorded = [h for r in results for h in r["simulation"]["transactions"]]
    assert sorted(h.lower() for h in sent) == sorted(h.lower() for h in recorded)

    for result in results:
        sim = result["simulation"]
        assert sim["accounting"] == "receipts" and sim["close_method"] == "close"
        kinds = [t["kind"] for t in sim["transaction_details"]]
        assert kinds[-2:] == ["open", "close"]
        receipts = [chain.receipt(h) for h in sim["transactions"]]
        assert all(r.status == 1 for r in receipts)
        start, end = receipts[0].block - 1, receipts[-1].block
        price = chain.weth_price_usdc(pool, end)

        # Gas: Σ gasUsed × effectiveGasPrice of the episode's transactions, approvals included.
        gas_eth = sum(r.gas_wei for r in receipts) / 1e18
        assert abs(result["gas_cost_usd"] - gas_eth * price) <= GAS_TOLERANCE * gas_eth * price

        # Fees: Collect − DecreaseLiquidity amounts, valued at the close price.
        collected = [chain.npm_amounts(r, COLLECT) for r in receipts]
        decreased = [chain.npm_amounts(r, DECREASE) for r in receipts]
        fee_usdc = sum(c[0] - d[0] for c, d in zip(collected, decreased, strict=True)) / 1e6
        fee_weth = sum(c[1] - d[1] for c, d in zip(collected, decreased, strict=True)) / 1e18
        fees_chain = fee_usdc + fee_weth * price
        assert fees_chain > 0, "the trader's swaps earned no fees"
        assert abs(result["fees_usd"] - fees_chain) <= FEES_TOLERANCE * fees_chain

        # Value: the wallet's USDC + WETH + ETH change over the episode at the close price is
        # what clmmd reports against holding (PnL − HODL return = fees − IL − gas).
        usdc0, weth0, eth0 = chain.wallet(wallet, start)
        usdc1, weth1, eth1 = chain.wallet(wallet, end)
        change = (usdc1 - usdc0) / 1e6 + ((weth1 - weth0) + (eth1 - eth0)) / 1e18 * price
        reported = result["pnl_usd"] - result["hodl_return_usd"]
        deposited = sim["initial_value_usd"]
        print(
            f"episode: deposited ${deposited:,.2f} txs {kinds} fees ${result['fees_usd']:.4f} "
            f"(chain ${fees_chain:.4f}) gas ${result['gas_cost_usd']:.4f} "
            f"(chain ${gas_eth * price:.4f}) vs-hold ${reported:.4f} (chain ${change:.4f})"
        )
        assert abs(change - reported) <= VALUE_TOLERANCE * deposited, (change, reported)
        components = result["fees_usd"] - result["il_usd"] - result["gas_cost_usd"]
        assert abs(reported - components) < 1e-6

    validate = clmmd(["runs", "validate", "--all"], env)
    assert validate.returncode == 0, validate.stdout + validate.stderr
