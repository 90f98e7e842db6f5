"""The Dune fault matrix through the whole daemon (``Daemon.run`` in serve mode, in process).

Every fault the fake server can play — each HTTP error status, 429 with Retry-After, held
requests (timeouts), malformed bodies, and execution end states (failed, expired, cancelled in
both spellings, an unknown state, partial results) plus a query Dune does not know — first alone,
then mixed at random, over simulated hours (a :class:`SteppedClock` drives every sleep, poll,
backoff and rate-limit wait). Checked all along: the daemon stays up and healthy, a key that
had good data never loses it (stale-if-error), errors show in ``clmmd status`` and ``/status``,
and no key starves: each is refreshed during the mixed phase and all are fresh after it.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from clmmd.artifacts.base.clock import parse_utc
from clmmd.env.mock import MockClmmEnv
from clmmd.scheduler.cache import IntelCache
from clmmd.scheduler.registry import _read_shipped_file
from clmmd.service.cli import commands
from clmmd.service.config import Settings, load_settings
from clmmd.service.host.daemon import Daemon
from clmmd.service.host.notify import SystemdNotifier
from tests.fakes.dune_server import (
    CANCELED,
    CANCELLED,
    COMPLETED,
    COMPLETED_PARTIAL,
    EXPIRED,
    FAILED,
    Endpoint,
    FakeDuneServer,
    Fault,
    shipped_rows,
)
from tests.reliability._harness import LONG, SteppedClock, record_figures

KEY = "fake-dune-key-fault-matrix-000001"
TICK_S = 60.0
STEP_S = 5.0
POOL_HEALTH_QUERY = 900002  # pool_health_score (a saved query here: execute)
GAS_QUERY = 900001  # gas_regime (a saved query here: latest)

# (name, faults per endpoint). Each burst is consumed by the next requests to that endpoint.
HTTP_FAULTS: list[tuple[str, Callable[[], Fault]]] = [
    *[(f"http_{s}", lambda s=s: Fault.http(s)) for s in (400, 401, 402, 403, 404, 409)],
    *[(f"http_{s}", lambda s=s: Fault.http(s)) for s in (429, 500, 502, 503)],
    ("http_429_retry_after", lambda: Fault.http(429, retry_after="20")),
    ("timeout", lambda: Fault.timeout(0.25)),
    ("malformed", Fault.malformed),
]
END_STATES = [FAILED, EXPIRED, CANCELLED, CANCELED, "QUERY_STATE_SOMETHING_NEW", COMPLETED_PARTIAL]
ENDPOINTS: tuple[Endpoint, ...] = ("sql", "execute", "status", "results", "latest")


def short_ttl_registry(path: Path) -> Path:
    """The shipped catalogue with a 60 s TTL everywhere, so every tick has work."""
    text = _read_shipped_file()
    text = re.sub(r"(?m)^ttl_seconds = \d+", "ttl_seconds = 60", text)
    text = re.sub(r"(?m)^max_age_seconds = \d+", "max_age_seconds = 1800", text)
    # Two keys on the operator's saved queries, so every endpoint has traffic; the rest SQL.
    for name, method, query_id in (
        ("gas_regime", "latest", GAS_QUERY),
        ("pool_health_score", "execute", POOL_HEALTH_QUERY),
    ):
        text = text.replace(
            f"[queries.{name}]\n", f'[queries.{name}]\nmethod = "{method}"\nquery_id = {query_id}\n'
        )
    path.write_text(text, encoding="utf-8")
    return path


class Harness:
    def __init__(self, daemon: Daemon, clock: SteppedClock, server: FakeDuneServer) -> None:
        self.daemon = daemon
        self.clock = clock
        self.server = server
        self.since_tick = 0.0
        self.ever_good: set[str] = set()
        self.checks = 0
        self.errors: set[str] = set()
        self.max_attempt_gap_s = 0.0

    async def simulate(self, seconds: float, each_step: Callable[[], None] | None = None) -> None:
        for _ in range(int(seconds / STEP_S)):
            self.clock.advance(STEP_S)
            self.since_tick += STEP_S
            if each_step is not None:
                each_step()
            if self.since_tick >= TICK_S:
                self.since_tick = 0.0
                assert self.daemon.scheduler is not None
                self.daemon.scheduler.run_now()
                self.check()
            await asyncio.sleep(0.003)

    async def simulate_until(
        self, predicate: Callable[[], bool], max_s: float, min_real_s: float = 5.0
    ) -> bool:
        """Simulate tick by tick until ``predicate``; give up after ``max_s`` simulated seconds
        and at least ``min_real_s`` real ones (held requests take real time)."""
        real_deadline = time.monotonic() + min_real_s
        simulated = 0.0
        while not predicate():
            if simulated >= max_s and time.monotonic() >= real_deadline:
                return False
            await self.simulate(TICK_S)
            simulated += TICK_S
        return True

    def check(self) -> None:
        """Up, healthy, and no key that ever had data lost it."""
        self.checks += 1
        assert self.daemon.health() == [], self.daemon.health()
        stack = self.daemon._stack
        assert stack is not None
        now = self.clock.now()
        for key, entry in self.daemon.cache_quality().items():
            if entry["error"]:
                self.errors.add(entry["error"])
            envelope = stack.cache.get_envelope(key)
            if envelope is not None:
                # Starvation shows as a key nobody even tries any more.
                gap = (now - parse_utc(envelope.attempted_at)).total_seconds()
                if gap > self.max_attempt_gap_s:
                    self.worst = (key, str(now), self.daemon.status()["refresh"])
                self.max_attempt_gap_s = max(self.max_attempt_gap_s, gap)
            if envelope is not None and envelope.data is not None:
                self.ever_good.add(key)
            elif key in self.ever_good:
                raise AssertionError(f"{key} lost its last good data: {envelope}")


def _printed_errors(status_output: str) -> dict[str, str]:
    """``clmmd status``'s last_error per key (the text after the key, quality and age)."""
    errors = {}
    for line in status_output.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0] != "key" and not parts[0].endswith(":"):
            errors[parts[0]] = parts[3] if len(parts) == 4 else ""
    return errors


def _disk_errors(settings: Settings, keys: Iterable[str]) -> dict[str, str | None]:
    """Each key's last error as stored on disk right now (a reader with an empty mirror)."""
    reader = IntelCache(settings.data_dir / "cache")
    try:
        envelopes = {key: reader.get_envelope(key) for key in keys}
    finally:
        reader.close()
    return {key: env.error if env is not None else None for key, env in envelopes.items()}


def _settings(data_dir: Path, server: FakeDuneServer, queries: Path) -> Settings:
    return load_settings(
        data_dir=data_dir,
        seed=3,
        durable_writes=False,
        http_listen="off",
        intel_data_source="dune",
        dune_api_key=KEY,
        dune_api_base_url=server.base_url,
        dune_timeout_s=0.05,  # real seconds: held requests cost real time
        dune_poll_interval_s=1.0,
        refresh_interval_s=86_400,  # ticks come from the simulated clock (run_now)
        queries_file=queries,
    )


async def test_dune_fault_matrix_through_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(13)
    clock = SteppedClock()
    async with FakeDuneServer(api_key=KEY) as server:
        server.wall_time = clock.now  # Dune's execution_ended_at on the simulated clock
        server.configure_query(GAS_QUERY, rows=lambda _p: shipped_rows("gas_regime"))
        server.configure_query(
            POOL_HEALTH_QUERY,
            rows=lambda p: shipped_rows("pool_health_score", p.get("pool_address")),
        )
        settings = _settings(tmp_path / "data", server, short_ttl_registry(tmp_path / "q.toml"))
        daemon = Daemon(
            settings,
            env=MockClmmEnv(),
            clock=clock,
            install_signals=False,
            notifier=SystemdNotifier(None),
        )
        task = asyncio.create_task(daemon.run())
        h = Harness(daemon, clock, server)
        for _ in range(500):
            if daemon.scheduler is not None and daemon.scheduler.running:
                break
            await asyncio.sleep(0.01)
        stack = daemon._stack
        assert stack is not None

        def all_good() -> bool:
            envelopes = [stack.cache.get_envelope(k) for k in daemon.cache_quality()]
            return all(e is not None and e.ok and e.error is None for e in envelopes)

        assert await h.simulate_until(all_good, 10 * TICK_S)  # warm: every key fetched once
        keys = sorted(daemon.cache_quality())
        assert len(keys) == 10
        errors_seen: dict[str, str] = {}
        cli_checks = 0

        # 1. Every HTTP-level fault alone: a burst on every endpoint, until consumed, then calm.
        for name, make in HTTP_FAULTS:
            for endpoint in ENDPOINTS:
                server.add_faults(endpoint, *(make() for _ in range(3)))
            h.errors.clear()
            consumed = await h.simulate_until(
                lambda: not any(server.pending_faults(e) for e in ENDPOINTS), 20 * TICK_S
            )
            assert consumed, (name, {e: server.pending_faults(e) for e in ENDPOINTS})
            errors_seen[name] = " | ".join(sorted(h.errors))
            shown = {k: v["error"] for k, v in daemon.status()["cache"].items() if v["error"]}
            if shown:
                capsys.readouterr()
                assert commands.status(settings) == 0
                printed = _printed_errors(capsys.readouterr().out)
                # A key being fetched may have its cache write land on disk (in a worker
                # thread) after the daemon's mirror was read and before the CLI read the disk:
                # then the CLI shows that newer envelope. Nothing here awaits, so no other write
                # can start meanwhile: the CLI shows the mirror's error or what is on disk now.
                on_disk = _disk_errors(settings, shown)
                for key, error in shown.items():  # the CLI shows what /status does
                    assert printed[key] in (error, on_disk[key] or ""), (key, error, printed)
                cli_checks += 1
            await h.simulate(3 * TICK_S)
            assert task.done() is False
        # Non-retried statuses surface with their code and advice; 401's names the variable.
        for status in (400, 401, 402, 403, 404, 409):
            assert f"HTTP {status}" in errors_seen[f"http_{status}"], errors_seen
        assert "DUNE_API_KEY" in errors_seen["http_401"]
        assert cli_checks >= 6

        # 2. Every execution end state alone (one execute query, one latest query).
        for state in END_STATES:
            server.configure_query(POOL_HEALTH_QUERY, final_state=state)
            server.configure_query(GAS_QUERY, latest_state=state)
            if state != COMPLETED_PARTIAL:

                def shows(state: str = state) -> bool:
                    error = daemon.status()["cache"]["gas_regime"]["error"]
                    return error is not None and state in error

                assert await h.simulate_until(shows, 8 * TICK_S), state
            else:  # partial rows are usable data, not an error
                await h.simulate(2 * TICK_S)
            server.configure_query(POOL_HEALTH_QUERY, final_state=COMPLETED)
            server.configure_query(GAS_QUERY, latest_state=COMPLETED)
            await h.simulate(2 * TICK_S)
        server.missing_queries.add(POOL_HEALTH_QUERY)
        pool_key = next(k for k in keys if k.startswith("pool_health_score"))
        assert await h.simulate_until(
            lambda: "404" in (daemon.status()["cache"][pool_key]["error"] or ""), 8 * TICK_S
        )
        server.missing_queries.clear()

        # 3. Everything mixed at random for simulated time; then calm.
        mixed_s = (120 if LONG else 30) * TICK_S
        mixed_start = clock.now()
        h.max_attempt_gap_s = 0.0  # measured over the mixed phase
        all_faults = [make for _, make in HTTP_FAULTS]

        def sprinkle() -> None:
            if rng.random() < 0.12:
                server.add_faults(rng.choice(ENDPOINTS), rng.choice(all_faults)())
            if rng.random() < 0.02:
                server.configure_query(POOL_HEALTH_QUERY, final_state=rng.choice(END_STATES))
            elif rng.random() < 0.1:
                server.configure_query(POOL_HEALTH_QUERY, final_state=COMPLETED)

        await h.simulate(mixed_s, sprinkle)
        starved = []
        for key in keys:
            envelope = stack.cache.get_envelope(key)
            assert envelope is not None and envelope.fetched_at is not None
            if envelope.fetched_at <= mixed_start.isoformat().replace("+00:00", "Z"):
                starved.append(key)
        assert starved == [], f"not refreshed once in {mixed_s / 60:.0f} faulty minutes"
        assert h.max_attempt_gap_s <= 15 * TICK_S, (h.max_attempt_gap_s, h.worst)
        server.configure_query(POOL_HEALTH_QUERY, final_state=COMPLETED)
        for endpoint in ENDPOINTS:
            while server.pending_faults(endpoint):
                server._faults[endpoint].popleft()
        # Calm again: every key's last attempt succeeds and nothing is too old or missing.
        assert await h.simulate_until(all_good, 10 * TICK_S)
        qualities = {v["quality"] for v in daemon.cache_quality().values()}
        assert qualities <= {"fresh", "stale"}, qualities
        assert task.done() is False
        daemon.request_stop("test")
        while not task.done():
            clock.advance(STEP_S)
            await asyncio.sleep(0.01)
        assert task.result() == 0
        record_figures(
            "dune_fault_matrix",
            simulated_minutes=round((clock.monotonic() - 1000.0) / 60),
            fault_kinds=len(HTTP_FAULTS) + len(END_STATES) + 1,
            requests=server.count(),
            health_checks=h.checks,
            keys=len(keys),
            starved=len(starved),
            max_attempt_gap_s=h.max_attempt_gap_s,
        )
