"""What ``clmmd status`` prints: cache quality per key, the trigger file position, the daemon.

It reads the cache and the trigger side files directly, so it works whether or not a daemon is
running; when one answers on ``CLMMD_HTTP_LISTEN`` its workers, queue and in-flight fetches are
shown too (and its active pools decide which pool keys are listed).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.planner import candidate_requests
from clmmd.scheduler.registry import Registry
from clmmd.scheduler.trigger_ledger import read_position
from clmmd.scheduler.triggers import trigger_path
from clmmd.service.datadir_lock import current_holder

_REJECTS_FILE = "dune_triggers.rejects.jsonl"


def daemon_status(address: tuple[str, int] | None, timeout_s: float = 1.0) -> dict[str, Any] | None:
    """The running daemon's ``/status`` JSON, or ``None`` when nothing answers."""
    if address is None:
        return None
    host, port = address
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/status"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            data = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return data if isinstance(data, dict) else None


def cache_lines(
    cache: IntelCache, registry: Registry, pools: list[str], pool_cap: int, now: datetime
) -> list[str]:
    """One line per key: key, quality, age and last error, the key column as wide as the
    longest key (pool-scoped keys carry a 42-character address and a window)."""
    rows = []
    for spec, request in candidate_requests(registry, pools, pool_cap=pool_cap):
        _, meta = cache.get_with_quality(request.key, now, spec.max_age_seconds)
        envelope = cache.get_envelope(request.key)
        error = (envelope.error if envelope else None) or ""
        age = meta["age_s"]
        rows.append((request.key, meta["quality"], "-" if age is None else f"{age:.0f}", error))
    width = max([len("key"), *(len(key) for key, *_ in rows)])
    lines = [f"{'key':<{width}} {'quality':<8} {'age_s':>9}  last_error"]
    lines += [f"{k:<{width}} {q:<8} {a:>9}  {e}".rstrip() for k, q, a, e in rows]
    return lines


def trigger_line(data_dir: Path) -> str:
    """Where the watcher has read up to, against the file's size, and how many lines it refused."""
    path = trigger_path(data_dir)
    try:
        size = path.stat().st_size
    except OSError:
        return f"triggers: no trigger file yet ({path})"
    position = read_position(data_dir)
    if position is None:
        return f"triggers: {size} bytes in {path.name}, not read by a daemon yet"
    offset, line_no = position.offset, position.line_no
    try:
        with (data_dir / _REJECTS_FILE).open("rb") as rejects:
            rejected = sum(1 for _ in rejects)
    except OSError:
        rejected = 0
    unread = max(0, size - offset)
    return (
        f"triggers: read up to line {line_no} (offset {offset} of {size} bytes, "
        f"{unread} unread); {rejected} rejected line(s) in {_REJECTS_FILE}"
    )


def owner_line(data_dir: Path) -> str:
    """Which process owns the data dir (``clmmd run`` or a learning campaign), if any: the
    truth when the daemon's HTTP status is off or unreachable."""
    holder = current_holder(data_dir)
    if holder is None:
        return f"data dir: {data_dir}, no owner (no daemon or learning campaign holds it)"
    return f"data dir: {data_dir}, owned by {holder}"


def daemon_line(status: dict[str, Any] | None, listen: str) -> str:
    if status is None:
        where = "CLMMD_HTTP_LISTEN=off" if listen == "off" else f"{listen}/status"
        return f"daemon: not reachable ({where}); not running, or listening elsewhere"
    episodes = status.get("episodes") or {}
    refresh = status.get("refresh") or {}
    workers = status.get("workers")
    lost = episodes.get("lost")
    health = status.get("health")
    line = (
        f"daemon: running, run {status.get('run_id')}; episodes finished "
        f"{episodes.get('finished')}, running {episodes.get('running')}, queued "
        f"{episodes.get('queued')}"
    )
    if isinstance(lost, dict):
        line += f", lost {sum(int(n) for n in lost.values())}"
        line += "".join(f" ({k} {n})" for k, n in lost.items() if n)
    if isinstance(workers, dict):
        line += f"; episode workers alive {workers.get('alive')}/{workers.get('configured')}"
    line += (
        f"; refresh workers {refresh.get('workers')}, in flight "
        f"{len(refresh.get('in_flight') or [])}, ticks {refresh.get('ticks')}"
        + (" (stopping)" if status.get("stopping") else "")
    )
    if isinstance(health, dict):
        reasons = health.get("reasons") or []
        line += f"\nhealth: {health.get('status')}" + "".join(f"\n  - {r}" for r in reasons)
    return line


def credit_line(credits: Mapping[str, Any]) -> str:
    """``clmmd status``'s line on Dune credits spent today against the daily budget."""
    used = float(credits.get("used", 0.0))
    estimated = float(credits.get("estimated", 0.0))
    head = f"dune credits {credits.get('date', '?')} (UTC): {used:.2f} used"
    if estimated > 0:
        head += f" ({estimated:.2f} estimated)"
    head += f", {credits.get('executions', 0)} executions, {credits.get('reads', 0)} result reads"
    budget = credits.get("budget_per_day")
    if budget is None:
        return head + "; no daily budget (DUNE_CREDIT_BUDGET_PER_DAY unset)"
    return head + f"; budget {float(budget):g}/day, {float(budget) - used:.2f} left"
