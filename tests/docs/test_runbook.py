"""docs/runbook.md cannot drift: its `sh` blocks are run, the rest is checked against the code.

Every ```sh block runs, in page order, as one ``bash -euo pipefail`` script in a shared empty
directory with the venv's ``clmmd`` first on PATH and no clmmd configuration in the environment
(so: mock mode, data in ./data). ```text blocks are not run, but each ``clmmd …`` line in them
must parse. The fixes table quotes messages that must still exist in the code; the failure
stages' hints must be the code's; the JSON examples must validate against the artifact schemas.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from clmmd.artifacts.layout import list_runs
from clmmd.artifacts.models import ARTIFACT_MODELS
from clmmd.artifacts.validate import validate_run
from clmmd.service.cli.main import build_parser
from clmmd.service.runs.runner import STAGE_HINTS
from tests.conftest import _config_variables

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook.md"
CLMMD = Path(sys.executable).parent / "clmmd"
SOURCE_DIRS = ("service", "scheduler", "env", "artifacts", "agent")
_COMMAND_LINE = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+|sudo -u \S+\s+)*\S*\bclmmd(?:\s|$)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    before: str  # the page text just before the fence


def _blocks() -> list[Block]:
    page = RUNBOOK.read_text()
    return [
        Block(m.group(1), m.group(2), page.count("\n", 0, m.start()) + 1, page[: m.start()])
        for m in _FENCE.finditer(page)
    ]


SH_BLOCKS = [b for b in _blocks() if b.lang == "sh"]


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runbook")


@pytest.fixture(scope="module")
def ran(workspace: Path) -> dict[int, Ran]:
    """Run every sh block once, in page order (later blocks use earlier blocks' runs)."""
    if not CLMMD.exists():
        pytest.skip(f"the clmmd console script is not installed at {CLMMD} (make install)")
    hidden = set(_config_variables())
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["PATH"] = f"{CLMMD.parent}{os.pathsep}{env.get('PATH', '')}"
    env["CLMMD_DURABLE_WRITES"] = "false"  # speed only: fsync proves nothing here
    # The runbook's commands run from the repository's top folder: its example files too.
    shutil.copytree(ROOT / "docs" / "examples", workspace / "docs" / "examples")
    results: dict[int, Ran] = {}
    for block in SH_BLOCKS:
        if "jq " in block.text and shutil.which("jq") is None:
            continue
        script = (
            "set -euo pipefail\n"
            "trap 'echo \"runbook command failed: $BASH_COMMAND\" >&2' ERR\n" + block.text
        )
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        results[block.line] = Ran(done.returncode, done.stdout, done.stderr)
    return results


@pytest.mark.parametrize("block", SH_BLOCKS, ids=[f"line{b.line}" for b in SH_BLOCKS])
def test_sh_block_runs(block: Block, ran: dict[int, Ran]) -> None:
    if block.line not in ran:
        pytest.skip("jq is not installed: this block's commands need it")
    result = ran[block.line]
    assert result.returncode == 0, (
        f"docs/runbook.md line {block.line}:\n{block.text}\nstderr:\n{result.stderr[-3000:]}"
    )


def _output_of(ran: dict[int, Ran], first_command: str) -> Ran:
    (block,) = [b for b in SH_BLOCKS if b.text.startswith(first_command)]
    return ran[block.line]


def _campaign_summary(stdout: str) -> dict[str, object]:
    """The campaign's closing JSON line (the sh blocks run off a terminal)."""
    lines = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    (summary,) = [x for x in lines if x.get("event") == "campaign_summary"]
    return summary


def test_runbook_commands_did_what_the_page_says(ran: dict[int, Ran], workspace: Path) -> None:
    quick = _output_of(ran, "clmmd campaign --episodes 20")
    summary = _campaign_summary(quick.stdout)
    assert (summary["episodes"], summary["successful"], summary["seed"]) == (20, 20, 12345)
    assert "0 violation(s)" in quick.stdout
    assert re.search(r"^report: data/runs/run_\w+/report/report\.html$", quick.stdout, re.M)
    seeded = _campaign_summary(_output_of(ran, "HB_ENV=mock").stdout)
    assert (seeded["episodes"], seeded["seed"]) == (2, 12345)
    triggers = _output_of(ran, "clmmd registry")
    assert '"type":"episodes"' in triggers.stdout.replace(" ", "")
    cold = _output_of(ran, "clmmd --data-dir cold")
    assert '"missing_or_too_old": 10' in cold.stdout
    backtest = _output_of(ran, "clmmd backtest --history docs/examples")
    shown = re.search(r"```text\n(  \"fees_token0\".*?)```", RUNBOOK.read_text(), re.S)
    assert shown, "the runbook shows the backtest's figures"
    for line in shown.group(1).splitlines():
        assert line.strip() in backtest.stdout, line
    stored = _output_of(ran, "clmmd history import")
    assert "1 day(s) stored" in stored.stdout and '"swaps": 24' in stored.stdout
    retention = _output_of(ran, "clmmd clean --keep 1 --dry-run")
    assert "would remove run_" in retention.stdout and "\nremoved run_" in retention.stdout
    # What is left is one valid run (and the cold one in its own data dir).
    (left,) = list_runs(workspace / "data")
    assert validate_run(left) == []
    assert len(list_runs(workspace / "cold")) == 1


def _clmmd_args(line: str) -> list[str] | None:
    """The arguments of a ``clmmd …`` command line, after env assignments and ``sudo -u X``."""
    if not _COMMAND_LINE.match(line):
        return None
    words = shlex.split(line.split(" | ")[0], comments=True)
    while words and (re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]) or words[0] == "sudo"):
        words = words[3:] if words[0] == "sudo" and words[1:2] == ["-u"] else words[1:]
    if not words or Path(words[0]).name != "clmmd":
        return None
    return words[1:]


def _all_command_lines() -> list[tuple[Block, list[str]]]:
    out = []
    for block in _blocks():
        if block.lang not in ("sh", "text", "bash"):  # bash: real mode, run by make e2e
            continue
        for line in block.text.splitlines():
            args = _clmmd_args(line)
            if args is not None:
                out.append((block, args))
    return out


def test_every_clmmd_line_parses() -> None:
    lines = _all_command_lines()
    assert len(lines) > 20
    parser = build_parser()
    for block, args in lines:
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"docs/runbook.md block at line {block.line}: clmmd {shlex.join(args)}")


def test_every_cli_command_appears_in_the_runbook() -> None:
    used = set()
    for _, args in _all_command_lines():
        rest = args[2:] if args[:1] == ["--data-dir"] else args
        used.update(rest[:1])
    (subcommands,) = [
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    missing = sorted(set(subcommands.choices) - used)
    assert not missing, f"commands the runbook never shows: {missing}"


def _fixes_table() -> list[str]:
    section = RUNBOOK.read_text().split("## 8. Common failures and fixes")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_fixes_table_quotes_messages_the_code_still_produces() -> None:
    rows = _fixes_table()
    assert len(rows) >= 15
    sources = "\n".join(
        path.read_text() for d in SOURCE_DIRS for path in sorted((ROOT / d).rglob("*.py"))
    )
    for row in rows:
        message = row.split("`")[1]
        assert message in sources, (
            f"runbook fixes table quotes text the code no longer has: {message!r}"
        )


def test_failure_stage_hints_are_the_codes() -> None:
    page = RUNBOOK.read_text()
    for stage, hint in STAGE_HINTS.items():
        assert f"| `{stage}` | {hint} |" in page, stage
    (interrupted,) = re.findall(r"^\| `interrupted` \| (.+) \|$", page, re.M)
    assert interrupted in (ROOT / "artifacts" / "recovery.py").read_text()


def test_json_examples_match_the_artifact_schemas() -> None:
    examples = [b for b in _blocks() if b.lang == "json"]
    assert len(examples) >= 4
    for block in examples:
        marker = re.search(r"<!-- example: ([\w.]+) -->\s*$", block.before)
        assert marker, f"json block at line {block.line} has no <!-- example: FILE --> marker"
        ARTIFACT_MODELS[marker.group(1)].model_validate_json(block.text)


def test_links_resolve() -> None:
    page = RUNBOOK.read_text()
    targets = set(re.findall(r"\]\(([\w./-]+\.md)\)", page))
    assert {"install.md", "configuration.md", "queries.md", "artifacts.md"} <= targets
    for target in targets:
        assert (RUNBOOK.parent / target).exists(), target
