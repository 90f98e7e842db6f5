"""``clmmd backtest`` and ``clmmd history``: figures that match the contract, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clmmd.env.base import KNOWN_POOLS
from clmmd.env.history_io import history_table, parquet_bytes, read_history
from clmmd.env.replay_synth import SyntheticMarket, synthetic_history
from clmmd.service.cli.main import main
from tests.env.testchain_history import LOWER, UPPER, ChainRun, run_testchain

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "docs" / "examples" / "testchain-swaps.parquet"
USDC_WETH = KNOWN_POOLS["0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"]


@pytest.fixture(scope="module")
def run() -> ChainRun:
    return run_testchain()


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    status = main(["backtest", *args])
    captured = capsys.readouterr()
    return status, (json.loads(captured.out) if status == 0 else {}), captured.err


def test_the_shipped_example_is_what_the_chain_makes(run: ChainRun) -> None:
    shipped, pool = read_history(EXAMPLE)
    assert pool == run.pool
    for column in ("amount0", "amount1", "sqrt_price_x96", "liquidity"):
        assert getattr(shipped, column) == getattr(run.history, column), column
    for column in ("block_time", "block_number", "log_index", "tick"):
        assert getattr(shipped, column).tolist() == getattr(run.history, column).tolist(), column


def test_backtest_of_the_chains_history_prints_what_the_contract_paid(
    run: ChainRun, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    path = tmp_path / "chain.parquet"
    path.write_bytes(parquet_bytes(run.history, run.pool))
    status, out, err = backtest(
        capsys,
        "--history", str(path),
        "--from", str(run.opened_at), "--to", str(run.closed_at),
        "--lower-tick", str(LOWER), "--upper-tick", str(UPPER),
        "--liquidity", str(run.liquidity),
        "--position-in-history",
        "--gas-price-gwei", "0",
    )  # fmt: skip
    assert status == 0, err
    assert (out["fees_token0"], out["fees_token1"]) == tuple(str(v) for v in run.collected)
    assert (out["withdraw_token0"], out["withdraw_token1"]) == tuple(str(v) for v in run.withdrawn)
    assert (out["deposit_token0"], out["deposit_token1"]) == tuple(str(v) for v in run.deposit)
    assert out["liquidity"] == str(run.liquidity)
    assert (out["tick_lower"], out["tick_upper"], out["swaps"]) == (LOWER, UPPER, 24)
    assert out["swaps_modelled"] == 0 and 0 < out["time_in_range_pct"] < 100
    # Both tokens are priced 1 in the test pool's "USD" (token0): values are token sums.
    end = out["end_price_usd"]
    assert out["value_end_usd"] == pytest.approx(
        run.withdrawn[0] / 1e18 + run.withdrawn[1] / 1e18 * end, rel=1e-12
    )
    assert out["pnl_usd"] == pytest.approx(
        out["hodl_return_usd"] - out["il_usd"] + out["fees_usd"] - out["gas_cost_usd"]  # type: ignore[operator]
    )


def test_backtest_on_top_sizes_the_position_from_usd_and_agrees_across_methods(
    run: ChainRun, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    common = ["--history", str(EXAMPLE), "--from", str(run.opened_at), "--to",
              str(run.closed_at), "--width-pct", "1.5", "--size-usd", "5"]  # fmt: skip
    status, exact, err = backtest(capsys, *common)
    assert status == 0, err
    assert exact["value_start_usd"] == pytest.approx(5.0, rel=1e-9)
    assert exact["position_in_history"] is False
    status, vector, _ = backtest(capsys, *common, "--method", "vector")
    assert status == 0
    assert float(vector["fees_usd"]) == pytest.approx(float(exact["fees_usd"]), rel=1e-9)  # type: ignore[arg-type]


def _write(tmp_path: Path, table: pa.Table, name: str = "bad.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def month_table() -> pa.Table:
    return history_table(
        synthetic_history(USDC_WETH, SyntheticMarket(swaps=2000, seconds_per_swap=60.0, seed=9)),
        USDC_WETH,
    )


@pytest.mark.parametrize(
    ("edit", "extra", "message"),
    [
        (
            lambda t: t.take([*range(10), 12, 11, *range(13, t.num_rows)]),
            [],
            "events not sorted: row 11",
        ),
        (
            lambda t: t.take([*range(20), 19, *range(20, t.num_rows)]),
            [],
            "duplicated event: row 20",
        ),
        (lambda t: t.drop_columns(["sqrt_price_x96"]), [], "missing column(s) sqrt_price_x96"),
        (
            lambda t: t,
            ["--lower-tick", "195001", "--upper-tick", "197000"],
            "tick_lower=195001 is not a multiple of the tick spacing 10",
        ),
        (lambda t: t, ["--from", "2024-06-01", "--to", "2024-06-02"], "no swap"),
        (
            lambda t: t,
            ["--from", "2024-05-01T10:00:00Z", "--to", "2024-05-01T10:00:01Z"],
            "empty window: no swap between",
        ),
        (lambda t: t, ["--from", "2020-01-01", "--to", "2024-05-02"], "no swap at or before"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    month_table: pa.Table,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data_dir: Path,
    edit,  # type: ignore[no-untyped-def]
    extra: list[str],
    message: str,
) -> None:
    path = _write(tmp_path, edit(month_table))
    args = ["--history", str(path), "--from", "2024-05-01T12:00:00Z", "--to", "2024-05-02",
            "--lower-tick", "195000", "--upper-tick", "197000", "--size-usd", "1000"]  # fmt: skip
    for k in range(0, len(extra), 2):
        if extra[k] in args:
            args[args.index(extra[k]) + 1] = extra[k + 1]
        else:
            args += extra[k : k + 2]
    status, _, err = backtest(capsys, *args)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clmmd backtest: "), err
    assert message in lines[0]


def test_a_csv_must_name_its_pool(
    month_table: pa.Table, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    import pyarrow.csv as pacsv

    path = tmp_path / "h.csv"
    pacsv.write_csv(month_table, path)
    args = ["--history", str(path), "--from", "2024-05-01T12:00:00Z", "--to", "2024-05-02",
            "--width-pct", "2", "--size-usd", "1000"]  # fmt: skip
    status, _, err = backtest(capsys, *args)
    assert status == 2 and "does not name its pool: add --pool ADDRESS" in err
    status, out, err = backtest(capsys, *args, "--pool", USDC_WETH.address)
    assert status == 0, err
    assert out["pool"] == USDC_WETH.address


def test_history_import_then_backtest_from_the_store(
    month_table: pa.Table, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    path = _write(tmp_path, month_table, "month.parquet")
    assert main(["history", "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "day(s) stored" in out and USDC_WETH.address in out
    assert main(["history", "list"]) == 0
    assert USDC_WETH.address.lower() in capsys.readouterr().out
    status, result, err = backtest(
        capsys, "--pool", USDC_WETH.address, "--from", "2024-05-01T12:00:00Z", "--to",
        "2024-05-01T18:00:00Z", "--width-pct", "3", "--size-usd", "10000",
    )  # fmt: skip
    assert status == 0, err
    direct_status, direct, _ = backtest(
        capsys, "--history", str(path), "--from", "2024-05-01T12:00:00Z", "--to",
        "2024-05-01T18:00:00Z", "--width-pct", "3", "--size-usd", "10000",
    )  # fmt: skip
    assert direct_status == 0 and result == direct
