"""Items 7 and 11 of issue 13: what the daemon writes, and where.

Item 11: every line on stderr is JSON. Libraries log through the standard ``logging`` module,
whose last resort is plain text on stderr: APScheduler's "Job raised an exception" and aiohttp's
"Error handling request" came out as multi-line tracebacks and broke ``journalctl -o cat | jq``.
A wrapper injects those faults (a failing refresh tick, a failing HTTP handler, an exception in
a thread, a warning) into a real ``clmmd run``.

Item 7: SIGHUP reopens the run's campaign.log as well as clmmd.log (logrotate moves both).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from clmmd.artifacts.layout import list_runs
from clmmd.scheduler.triggers import trigger_episodes
from tests.reliability._harness import (
    REPO,
    DaemonProcess,
    daemon_env,
    free_port,
    http_get,
    parse_json_lines,
    record_figures,
    wait_until,
)

FAULTY_DAEMON = """
import sys, threading, warnings
from clmmd.scheduler import scheduling
from clmmd.service.host import http, notify

original_tick = scheduling.RefreshScheduler.tick
ticks = []

async def failing_first_tick(self):
    ticks.append(1)
    if len(ticks) == 1:
        raise RuntimeError("injected tick failure")
    return await original_tick(self)

async def failing_metrics(self, request):
    raise RuntimeError("injected handler failure")

def thread_failure():
    raise RuntimeError("injected thread failure")

original_ready = notify.SystemdNotifier.ready

async def ready_then_faults(self, status=None):
    # Once serving: a thread that dies and a library warning.
    threading.Timer(0.2, thread_failure).start()
    threading.Timer(0.2, lambda: warnings.warn("injected warning", RuntimeWarning)).start()
    return await original_ready(self, status)

scheduling.RefreshScheduler.tick = failing_first_tick
http.StatusServer._metrics_page = failing_metrics
notify.SystemdNotifier.ready = ready_then_faults

from clmmd.service.cli.main import main
sys.exit(main(["run"]))
"""


def test_everything_on_stderr_is_json(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = daemon_env(data_dir, CLMMD_HTTP_LISTEN=f"127.0.0.1:{port}")
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", FAULTY_DAEMON], env=env, cwd=REPO, stdout=stdout, stderr=stderr
        )
    try:

        def events() -> list[dict[str, object]]:
            return parse_json_lines(out.read_bytes())

        def find(fragment: str) -> list[dict[str, object]]:
            return [e for e in events() if fragment in str(e.get("event"))]

        def seen(fragment: str) -> bool:
            return bool(find(fragment))

        assert wait_until(lambda: seen("daemon_ready"), 60), err.read_text()
        assert http_get(port, "/metrics")[0] == 500
        assert wait_until(lambda: seen("Error handling request"), 10)
        assert wait_until(lambda: seen("raised an exception"), 10)
        assert wait_until(lambda: seen("uncaught_exception_in_thread"), 10)
        assert wait_until(lambda: seen("injected warning"), 10)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in err.read_text().splitlines() if line.strip()]
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not_json == [], not_json[:5]
    (job,) = find("raised an exception")
    assert job["logger"] == "apscheduler.executors.default" and job["level"] == "error"
    assert "injected tick failure" in json.dumps(job["exception"])
    assert find("Error handling request")[0]["logger"] == "aiohttp.server"
    record_figures("stderr_json", stderr_lines=len(lines), not_json=len(not_json))


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_sighup_reopens_campaign_log_too(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    daemon = DaemonProcess(daemon_env(data_dir), tmp_path / "out", "hup")
    try:
        assert daemon.wait_for_event("daemon_ready", 60), daemon.stderr()
        (run,) = list_runs(data_dir)
        trigger_episodes(2, data_dir=data_dir)
        log = run.campaign_log
        assert wait_until(lambda: log.read_text().count('"episode_done"') == 2, 30)
        # logrotate: move both files away, then SIGHUP.
        log.rename(log.with_name("campaign.log.1"))
        clmmd_log = data_dir / "logs" / "clmmd.log"
        clmmd_log.rename(clmmd_log.with_name("clmmd.log.1"))
        daemon.signal(signal.SIGHUP)
        assert wait_until(
            lambda: clmmd_log.exists() and "log_files_reopened" in clmmd_log.read_text(), 10
        )
        trigger_episodes(3, data_dir=data_dir)
        assert wait_until(lambda: log.exists() and log.read_text().count('"episode_done"') == 3, 30)
        assert log.with_name("campaign.log.1").read_text().count('"episode_done"') == 2
    finally:
        assert daemon.terminate() == 0
