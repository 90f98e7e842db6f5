"""docs/runbook.md's real-mode section, run as written against the real Gateway v2.13.

Its ``env`` block becomes ``.env`` (the two placeholders replaced by this stack's Gateway URL and
wallet) and its ``bash`` blocks run in order in one shell, in an empty directory. Dune is not
reachable here, so intel is mock; the horizon is shortened (variables in the environment take
precedence over ``.env``, as for any operator).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.chain import Trader
from tests.e2e.stack import REPO, Stack

SECTION = re.compile(r"^## 4\. Real mode set-up.*?(?=^## 5\.)", re.M | re.S)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.M | re.S)


def section_blocks() -> list[tuple[str, str]]:
    page = (REPO / "docs" / "runbook.md").read_text()
    match = SECTION.search(page)
    assert match, "runbook has no real-mode section 4"
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(match.group(0))]


def test_the_real_mode_section_runs_as_written(
    stack: Stack, trader: Trader, tmp_path: Path
) -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (the section's last command uses it)")
    blocks = section_blocks()
    (env_file,) = [text for lang, text in blocks if lang == "env"]
    script = "\n".join(text for lang, text in blocks if lang == "bash")
    assert "clmmd campaign" in script and "validate-pool" in script
    dotenv = re.sub(r"(?m)^GATEWAY_URL=.*$", f"GATEWAY_URL={stack.gateway_url}", env_file)
    dotenv = re.sub(
        r"(?m)^GATEWAY_WALLET_ADDRESS=.*$", f"GATEWAY_WALLET_ADDRESS={stack.wallet}", dotenv
    )
    assert dotenv != env_file
    (tmp_path / ".env").write_text(dotenv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLMMD_", "GATEWAY_"))}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "INTEL_DATA_SOURCE": "mock",
            "CLMMD_HORIZON_HOURS": "0.003",
            "GATEWAY_SAMPLE_INTERVAL_S": "3",
        }
    )
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.rindex("{") :])
    assert summary["status"] == "success", summary  # live, not skipped by a gate
    assert summary["accounting"] == "receipts" and summary["close_method"] == "close"
    assert "ok   address" in done.stdout and "FAIL" not in done.stdout
