"""At start-up in real mode: settle the positions that interrupted episodes left on chain.

An interrupted episode (``failure.json`` stage ``interrupted``) with a ``live_opened`` line — in
the run's ``campaign.log``, flushed line by line so it survives kill -9, or in the episode's own
``logs.jsonl`` — opened a position the process may not have closed. Each such episode without
a ``reconciliation.json`` is handed to :func:`clmmd.env.real_recovery.settle_claim`; what was found
and done is written to the episode's ``reconciliation.json`` and logged (``live_reconciled``).
Positions the wallet holds in the configured pools that no episode claims are reported
(``live_position_unclaimed``) and left alone: they may be the operator's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from clmmd.artifacts.base.clock import Clock
from clmmd.artifacts.layout import list_runs
from clmmd.artifacts.writer import replace_json
from clmmd.env.base import KNOWN_POOLS, ClmmEnv
from clmmd.env.gateway_errors import GatewayError
from clmmd.env.real import RealClmmEnv
from clmmd.env.real_recovery import Claim, settle_claim

log = structlog.get_logger(__name__)

RECONCILIATION = "reconciliation.json"


def _interrupted(episode_dir: Path) -> bool:
    try:
        failure = orjson.loads((episode_dir / "failure.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(failure, dict) and failure.get("stage") == "interrupted"


def _log_events(path: Path, event: str) -> list[dict[str, Any]]:
    """The ``event`` lines of a JSON-lines log (unreadable or torn lines are skipped)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


def find_claims(data_dir: Path) -> list[tuple[Path, Claim]]:
    """Interrupted episodes with an opened position and no reconciliation yet."""
    claims = []
    for layout in list_runs(data_dir):
        opened: dict[str, list[dict[str, Any]]] = {}
        for entry in _log_events(layout.campaign_log, "live_opened"):
            opened.setdefault(str(entry.get("episode_id")), []).append(entry)
        for episode_dir in layout.episode_dirs():
            if (episode_dir / RECONCILIATION).exists() or not _interrupted(episode_dir):
                continue
            entries = opened.get(episode_dir.name, []) + _log_events(
                episode_dir / "logs.jsonl", "live_opened"
            )
            seen: set[str] = set()
            for entry in entries:
                pool = KNOWN_POOLS.get(str(entry.get("pool", "")).lower())
                position = str(entry.get("position") or "")
                if pool is None or not position:
                    log.warning("live_claim_unreadable", episode=str(episode_dir), entry=entry)
                    continue
                if position not in seen:
                    seen.add(position)
                    label = f"{layout.run_id}/{episode_dir.name}"
                    claims.append((episode_dir, Claim(label, position, pool)))
    return claims


async def reconcile_live_positions(
    data_dir: Path, env: ClmmEnv, pool_addresses: Sequence[str], clock: Clock
) -> list[dict[str, Any]]:
    """Settle every claim (one at a time: one wallet) and record it; report unclaimed ones.

    Does nothing unless ``env`` is the real environment."""
    if not isinstance(env, RealClmmEnv):
        return []
    pools = [KNOWN_POOLS[a.lower()] for a in pool_addresses if a.lower() in KNOWN_POOLS]
    claims = await asyncio.to_thread(find_claims, data_dir)
    records = []
    by_episode: dict[Path, list[dict[str, Any]]] = {}
    for episode_dir, claim in claims:
        record = await settle_claim(env, claim)
        level = log.error if record["action"] == "left_open" else log.warning
        level("live_reconciled", episode=claim.episode, **record)
        by_episode.setdefault(episode_dir, []).append(record)
        records.append(record)
    for episode_dir, settled in by_episode.items():
        document = {
            "checked_at": clock.now().isoformat(),
            "episode": f"{episode_dir.parent.parent.name}/{episode_dir.name}",
            "positions": settled,
        }
        await asyncio.to_thread(replace_json, episode_dir / RECONCILIATION, document)
    claimed = {c.position for _, c in claims}
    for pool in pools:
        try:
            owned = await env.positions.owned(pool)
        except GatewayError as exc:
            log.warning("live_unclaimed_check_failed", pool=pool.address, error=str(exc))
            continue
        for position in owned:
            if position.address not in claimed:
                log.warning(
                    "live_position_unclaimed",
                    position=position.address,
                    pool=pool.address,
                    reason="no interrupted episode logged it: left alone (maybe the operator's)",
                )
    return records
