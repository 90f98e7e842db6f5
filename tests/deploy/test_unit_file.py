"""The systemd unit passes `systemd-analyze verify` and keeps its safety settings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "clmmd.service"


def test_unit_has_notify_watchdog_and_hardening() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "EnvironmentFile=",
        "LoadCredential=dune_api_key:",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/clmmd",
        "PrivateTmp=yes",
    ):
        assert line in text, line
    assert "DUNE_API_KEY=" not in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    clmmd = Path(sys.executable).with_name("clmmd")
    unit = tmp_path / "clmmd.service"
    unit.write_text(UNIT.read_text().replace("/opt/clmmd/.venv/bin/clmmd", str(clmmd)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "clmmd.service" in line and "Failed to " not in line
    ]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
