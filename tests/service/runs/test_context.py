"""The proposal → execution request translation shared by the runner and the evaluation."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import pytest

from clmmd.agent.proposer import ProposalContext, propose
from clmmd.agent.regime import MarketView
from clmmd.agent.state import AgentState
from clmmd.artifacts.models import Proposal
from clmmd.env.base import MarketInputs, pool_by_address
from clmmd.service.analysis.evaluation_paired import evaluate_on_snapshot
from clmmd.service.runs.context import EpisodeSettings, execution_request

POOL = pool_by_address("0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640")
SETTINGS = EpisodeSettings(
    run_id="run_x",
    campaign_seed=7,
    config_hash="h",
    exec_mode="mock",
    learn_from_mock=False,
    size_usd=1000.0,
    horizon_hours=24.0,
)


def proposal(**kw: object) -> Proposal:
    ctx = ProposalContext(
        run_id="run_x",
        episode_id="ep_000001",
        seed=11,
        pool=POOL,
        view=MarketView(price_usd=3000.0),
        size_usd=2500.0,
        horizon_hours=6.0,
    )
    return propose(ctx, AgentState()).model_copy(update=kw)


def test_the_proposal_decides_size_horizon_and_risk() -> None:
    p = proposal()
    request = execution_request(SETTINGS, p, pool=POOL, seed=11, market=MarketInputs())
    assert (request.tick_lower, request.tick_upper) == (p.tick_lower, p.tick_upper)
    assert request.size_usd == 2500.0 != SETTINGS.size_usd
    assert request.horizon_hours == 6.0
    assert request.risk_scalar == p.risk_scalar
    assert request.episode_id == "ep_000001"


def test_settings_fill_what_the_proposal_left_out() -> None:
    p = proposal(size_usd=None, horizon_hours=None, risk_scalar=None)
    request = execution_request(SETTINGS, p, pool=POOL, seed=11, market=MarketInputs())
    assert (request.size_usd, request.horizon_hours, request.risk_scalar) == (1000.0, 24.0, 1.0)


def test_a_proposal_without_a_range_is_refused() -> None:
    p = proposal(tick_lower=None, proposed=False, reason="agent crashed")
    with pytest.raises(ValueError, match="agent crashed"):
        execution_request(SETTINGS, p, pool=POOL, seed=11, market=MarketInputs())


def test_evaluation_runs_the_request_the_runner_would_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The learned arm of the evaluation goes through execution_request (no copy of it)."""
    from clmmd.service.analysis import evaluation_paired

    seen = []

    def spy(*args: object, **kw: object) -> object:
        request = execution_request(*args, **kw)  # type: ignore[arg-type]
        seen.append(request)
        return request

    monkeypatch.setattr(evaluation_paired, "execution_request", spy)

    class Snapshot:
        hygiene: ClassVar[dict[str, float]] = {"fresh_pct": 100.0}

        def market_inputs(self) -> MarketInputs:
            return MarketInputs()

        def value(self, query: str, field: str) -> object:
            return None

    s = replace(SETTINGS, size_usd=777.0)
    report = evaluate_on_snapshot(s, POOL, Snapshot(), AgentState(), episodes=2)  # type: ignore[arg-type]
    assert len(seen) == 2
    assert all(r.size_usd == 777.0 for r in seen)
    assert len(report.episodes) == 2
