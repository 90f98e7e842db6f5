"""Secret hygiene: a recognisable fake DUNE_API_KEY goes through a campaign, triggers, a burst
daemon, ``refresh --once``, the serving daemon (``/status``, ``/metrics``) and every read-only
command, against a Dune server that fails in every way — and even echoes the key back in its
error texts. Then every output and every byte under the data dir (logs, artifacts, the SQLite
cache, trigger side files) is searched for the key: zero hits."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.fakes.dune_server import FAILED, Fault, dune_server_thread
from tests.reliability._harness import (
    POOL,
    REPO,
    DaemonProcess,
    daemon_env,
    record_figures,
)

CANARY = "dune-CANARY-7f3a9c2e51b84d06e1a0"


def _clmmd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "clmmd.service.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_key_appears_nowhere(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    outputs: list[bytes] = []
    timings: dict[str, float] = {}
    with dune_server_thread(CANARY) as (server, _loop):
        echo = f"denied for header X-Dune-Api-Key: {CANARY}"
        for endpoint in ("execute", "status", "results", "latest"):
            server.add_faults(
                endpoint,
                Fault.http(500, error=echo),
                Fault.http(401, error=echo),
                Fault.malformed(),
                Fault.http(429, error=echo, retry_after="0"),
            )
        server.configure_query(900002, final_state=FAILED, error={"type": "E", "message": echo})
        port = _free_port()
        env = daemon_env(
            data_dir,
            INTEL_DATA_SOURCE="dune",
            DUNE_API_KEY=CANARY,
            DUNE_API_BASE_URL=server.base_url,
            DUNE_POLL_INTERVAL_S="0.01",
            DUNE_TIMEOUT_S="2",
            CLMMD_LOG_LEVEL="debug",
            CLMMD_HTTP_LISTEN=f"127.0.0.1:{port}",
        )
        steps = [
            ("campaign", "--episodes", "3", "--cold"),
            ("trigger", "refresh", "--reason", "canary", "--pool", POOL),
            ("trigger", "episodes", "--count", "2"),
            ("run", "--once"),
            ("refresh", "--once"),
            ("status",),
            ("runs", "list"),
            ("runs", "show"),
            ("runs", "validate", "--all"),
            ("registry",),
        ]
        for step in steps:
            t0 = time.monotonic()
            done = _clmmd(env, *step)
            timings[" ".join(step[:2])] = round(time.monotonic() - t0, 1)
            outputs += [done.stdout, done.stderr]
            assert done.returncode in (0, 1), (step, done.stderr.decode()[-2000:])
        # A config error that quotes values must not quote the key either.
        bad = _clmmd({**env, "DUNE_API_KEY": CANARY, "EPISODES": "zero"}, "campaign")
        assert bad.returncode == 2
        outputs += [bad.stdout, bad.stderr]
        daemon = DaemonProcess(env, tmp_path / "out", "serving")
        try:
            assert daemon.wait_for_event("daemon_ready", 60), daemon.stderr_path.read_text()
            time.sleep(0.5)
            for path in ("/status", "/metrics", "/healthz"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                        outputs.append(r.read())
                except urllib.error.HTTPError as exc:  # /healthz may say 503: still read it
                    outputs.append(exc.read())
        finally:
            assert daemon.terminate() == 0
        outputs += [daemon.stdout_path.read_bytes(), daemon.stderr_path.read_bytes()]
        used = sum(r.had_valid_key for r in server.requests)
    # The key did reach Dune (so it was loaded and used), and errors were logged.
    assert used > 0
    logged = b"".join(outputs)
    assert b"HTTP 500" in logged and b"HTTP 401" in logged  # the failures were logged
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "clmmd.log" for p in files)
    assert any(p.suffix == ".json" for p in files)
    needle = CANARY.encode()
    hits = [f"output #{i}" for i, out in enumerate(outputs) if needle in out]
    hits += [str(p) for p in files if needle in p.read_bytes()]
    # Also the key's distinctive tail, in case something cut or re-encoded it.
    hits += [str(p) for p in files if CANARY[-16:].encode() in p.read_bytes()]
    assert hits == [], f"the API key leaked into: {hits} ({timings})"
    record_figures(
        "secret_hygiene",
        outputs_searched=len(outputs),
        files_searched=len(files),
        requests_with_key=used,
        hits=len(hits),
    )
