"""``clmmd runs show``: the PnL decomposition and each range in ticks, USD and per cent."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from clmmd.artifacts.layout import list_runs
from clmmd.service.cli.main import main


def test_runs_show_decomposes_pnl_and_shows_price_ranges(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLMMD_DURABLE_WRITES", "false")
    assert main(["campaign", "--episodes", "5", "--seed", "11"]) == 0
    (run,) = list_runs(data_dir)
    capsys.readouterr()
    assert main(["runs", "show"]) == 0
    out = capsys.readouterr().out
    summary = orjson.loads(run.summary_path.read_bytes())
    decomposition = re.search(
        r"PnL decomposition +(\S+) = HODL return (\S+) − IL (\S+) \+ fees (\S+) − gas (\S+)", out
    )
    assert decomposition is not None, out
    pnl, hodl, il, fees, gas = (float(x.replace(",", "")) for x in decomposition.groups())
    assert pnl == round(summary["total_pnl_usd"], 2)
    assert hodl == round(summary["total_hodl_return_usd"], 2)
    assert abs(hodl - il + fees - gas - pnl) <= 0.03  # five figures rounded to the cent
    for folder in run.episode_dirs():
        proposal = orjson.loads((folder / "proposal.json").read_bytes())
        (line,) = [x for x in out.splitlines() if x.strip().startswith(folder.name)]
        low, high = proposal["price_lower_usd"], proposal["price_upper_usd"]
        price = proposal["price_at_proposal_usd"]
        assert f"{proposal['tick_lower']}–{proposal['tick_upper']}" in line
        assert f"{low:,.2f}–{high:,.2f}" in line
        low_pct, high_pct = 100 * (low / price - 1), 100 * (high / price - 1)
        assert f"±{high_pct:.1f} %" in line or f"{low_pct:+.1f}/{high_pct:+.1f} %" in line
