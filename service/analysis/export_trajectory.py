"""One episode folder as a training trajectory (observation, action, reward, outcome).

What ``clmmd export`` writes for each episode; ``docs/export-format.md`` documents the fields.
An episode without metadata.json (still running, or interrupted and not yet recovered) or with
an unreadable artifact raises :class:`UnreadableEpisode` with the reason; nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from clmmd.artifacts.base.clock import parse_utc, utc_iso
from clmmd.artifacts.models import EpisodeFailure, EpisodeMetadata, EpisodeResult, Proposal, Reward

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class PlacedEpisode:
    """One episode's trajectory and the moment that places it in a window (its start)."""

    timestamp: datetime
    trajectory: dict[str, Any]

    @property
    def order(self) -> tuple[datetime, str, str]:
        """Where it stands in its window: by start, then run and episode id."""
        t = self.trajectory
        return (self.timestamp, t["run_id"], t["episode_id"])


class UnreadableEpisode(Exception):
    """An episode folder that cannot be exported; the message says why."""


def _read_model(folder: Path, name: str, model: type[M]) -> M | None:
    path = folder / name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnreadableEpisode(f"{name}: {exc.strerror or exc}") from None
    try:
        return model.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise UnreadableEpisode(f"{name}: invalid JSON ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise UnreadableEpisode(f"{name}: {where}: {first['msg']}") from None


def _action(p: Proposal) -> dict[str, Any]:
    return {
        "proposed": p.proposed,
        "reason": p.reason,
        "pool_address": p.pool_address,
        "pair": p.pair,
        "chain": p.chain,
        "network": p.network,
        "fee_pips": p.fee_pips,
        "tick_lower": p.tick_lower,
        "tick_upper": p.tick_upper,
        "width_ticks": p.action.width_ticks if p.action else None,
        "price_lower_usd": p.price_lower_usd,
        "price_upper_usd": p.price_upper_usd,
        "price_at_proposal_usd": p.price_at_proposal_usd,
        "size_usd": p.size_usd,
        "risk_scalar": p.risk_scalar,
        "horizon_hours": p.horizon_hours,
        "expected_reward": p.expected_reward,
    }


def as_number(value: object) -> float | None:
    """A JSON number as float; None for anything else (``true`` is not 1 here)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _outcome(result: EpisodeResult | None, failure: EpisodeFailure | None) -> dict[str, Any]:
    numbers = ("pnl_usd", "fees_usd", "gas_cost_usd", "il_usd", "time_in_range_pct")
    extra = ("risk_scalar_applied", "size_usd_applied")
    if failure is not None or result is None:
        # failure.json wins over a result.json written before a later step failed: the
        # episode did not complete, so its numbers are not an outcome to learn from.
        return {
            "status": "failed",
            **dict.fromkeys(numbers + extra),
            "start_price_usd": None,
            "end_price_usd": None,
            "reason": failure.error_message if failure else "no result.json",
            "failure": (
                {
                    "stage": failure.stage,
                    "error_type": failure.error_type,
                    "error_message": failure.error_message,
                }
                if failure
                else None
            ),
        }
    simulation = result.simulation.model_dump()
    return {
        "status": result.status,
        **{name: getattr(result, name) for name in numbers + extra},
        "start_price_usd": as_number(simulation.get("start_price_usd")),
        "end_price_usd": as_number(simulation.get("end_price_usd")),
        "reason": result.reason,
        "failure": None,
    }


def _observation(metadata: EpisodeMetadata, result: EpisodeResult | None) -> dict[str, Any]:
    extra = metadata.extra
    simulation = result.simulation.model_dump() if result is not None else {}
    inputs = simulation.get("inputs")
    defaults = simulation.get("defaults_used")
    return {
        "regime_key": metadata.regime_key,
        "intel_snapshot": {k: v.model_dump() for k, v in sorted(extra.intel_snapshot.items())},
        "intel_hygiene": extra.intel_hygiene.model_dump() if extra.intel_hygiene else None,
        "intel_inputs": extra.intel_inputs.model_dump() if extra.intel_inputs else None,
        "market_inputs": dict(inputs) if isinstance(inputs, dict) else None,
        "defaults_used": list(defaults) if isinstance(defaults, list) else None,
    }


def load_episode(run_id: str, folder: Path) -> PlacedEpisode:
    """One episode folder as a trajectory with its timestamp; ``UnreadableEpisode`` says why
    not."""
    metadata = _read_model(folder, "metadata.json", EpisodeMetadata)
    if metadata is None:
        raise UnreadableEpisode(
            "no metadata.json (episode still running, or interrupted and not yet "
            "recovered: the next campaign or daemon start completes it)"
        )
    proposal = _read_model(folder, "proposal.json", Proposal)
    if proposal is None:
        raise UnreadableEpisode("no proposal.json")
    result = _read_model(folder, "result.json", EpisodeResult)
    failure = _read_model(folder, "failure.json", EpisodeFailure)
    reward = _read_model(folder, "reward.json", Reward)
    try:
        timestamp = parse_utc(metadata.timestamp)
    except ValueError as exc:
        raise UnreadableEpisode(f"metadata.json: timestamp: {exc}") from None
    trajectory = {
        "run_id": run_id,
        "episode_id": folder.name,
        "timestamp": utc_iso(timestamp),
        "agent_version": metadata.agent_version,
        "seed": metadata.seed,
        "exec_mode": metadata.exec_mode,
        "config_hash": metadata.config_hash,
        "learning_update_applied": metadata.learning_update_applied,
        "learning_update_reason": metadata.learning_update_reason,
        "observation": _observation(metadata, result),
        "action": _action(proposal),
        "reward": reward.model_dump() if reward is not None and failure is None else None,
        "outcome": _outcome(result, failure),
    }
    return PlacedEpisode(timestamp, trajectory)
