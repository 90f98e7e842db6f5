"""The daemon in real mode, stopped while a position is open: SIGTERM, and separately kill -9.

In both cases no money is left behind silently: after SIGTERM the episode closes its position
before the process exits (past the drain deadline) and says so in its logs; after kill -9 the
next start finds the position the interrupted episode logged, closes it and writes the episode's
``reconciliation.json``. The chain is the judge: the wallet's position must end with no liquidity.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.chain import Trader
from tests.e2e.conftest import clmmd, clmmd_env
from tests.e2e.stack import REPO, Stack


@contextmanager
def daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``clmmd run`` in its own process group; stopped (SIGKILL at worst) at exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "clmmd"), "run"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, proc: Any = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def events(data: Path, name: str) -> list[tuple[Path, dict[str, Any]]]:
    """``name`` events of every run's campaign.log, with their episode's folder."""
    found = []
    for log in data.glob("runs/*/campaign.log"):
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("event") == name:
                found.append((log.parent / "episodes" / str(entry.get("episode_id")), entry))
    return found


def start_one_episode(stack: Stack, env: dict[str, str], proc: Any) -> tuple[Path, int]:
    """Trigger one episode and wait until its position is open on chain."""
    wait_for("daemon ready", lambda: (Path(env["CLMMD_DATA_DIR"]) / "runs").exists(), 60, proc)
    assert clmmd(["trigger", "episodes", "--count", "1"], env).returncode == 0
    data = Path(env["CLMMD_DATA_DIR"])
    episode_dir, entry = wait_for("live_opened", lambda: events(data, "live_opened"), 120, proc)[-1]
    position = int(entry["position"])
    assert stack.chain.position_liquidity(position) > 0
    return episode_dir, position


def restart_until_reconciled(env: dict[str, str], log: Path, episode_dir: Path) -> Any:
    """Start the daemon again, wait for the episode's reconciliation.json, stop; its record."""
    record_path = episode_dir / "reconciliation.json"
    with daemon(env, log) as proc:
        wait_for("reconciliation.json", record_path.exists, 120, proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    (record,) = json.loads(record_path.read_text())["positions"]
    return record


def stopped_env(stack: Stack, data: Path) -> dict[str, str]:
    # A long horizon keeps the position open while the test stops the daemon.
    return clmmd_env(stack, data, CLMMD_HORIZON_HOURS="0.2", CLMMD_DRAIN_TIMEOUT_S="1")


def test_kill_9_with_an_open_position_is_reconciled_on_restart(
    stack: Stack, trader: Trader, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = stopped_env(stack, data)
    log = tmp_path / "daemon.log"
    with daemon(env, log) as proc:
        episode_dir, position = start_one_episode(stack, env, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert stack.chain.position_liquidity(position) > 0  # really left open by the kill

    record = restart_until_reconciled(env, log, episode_dir)
    assert record["position_id"] == str(position) and record["action"] == "closed"
    assert record["token0_removed"] > 0 or record["token1_removed"] > 0
    assert record["token0_fees"] > 0 or record["token1_fees"] > 0  # the trader's swaps paid
    assert all(t["source"] == "receipt" for t in record["transactions"])
    failure = json.loads((episode_dir / "failure.json").read_text())
    assert failure["stage"] == "interrupted"
    assert position not in stack.chain.positions_of(stack.wallet)  # burned: nothing left
    for tx in record["transactions"]:
        assert stack.chain.receipt(tx["hash"]).status == 1


def test_sigterm_with_an_open_position_closes_it_before_exit(
    stack: Stack, trader: Trader, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = stopped_env(stack, data)
    log = tmp_path / "daemon.log"
    with daemon(env, log) as proc:
        episode_dir, position = start_one_episode(stack, env, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    assert position not in stack.chain.positions_of(stack.wallet)
    closed = [e for d, e in events(data, "live_closed_on_cancel") if d == episode_dir]
    assert closed and closed[0]["position"] == str(position)
    assert json.loads((episode_dir / "failure.json").read_text())["stage"] == "interrupted"

    # The next start checks the chain for that episode's position and records what it found.
    record = restart_until_reconciled(env, log, episode_dir)
    assert record["action"] == "none" and record["found"] is False
