"""What a person sees: ``clmmd campaign`` under a pseudo-terminal vs piped, and the log routes."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from clmmd.service.cli.console import Console, LevelGate, resolve_mode
from clmmd.service.config import load_settings
from tests.terminal import clean_env, frames, run_under_pty

BAR = re.compile(r"^\[[#-]{30}\] +\d+/(\d+) episodes  [\d.-]+ ep/s  ETA [\d:-]+( +\d+ failed)?$")
SUMMARY_PREFIXES = ("campaign run_", "PnL ", "artifacts: ", "log:       ", "inspect:   ", "again: ")


def _campaign_argv(data_dir: Path, episodes: int) -> list[str]:
    # --data-dir after the subcommand, as people type it.
    return [
        sys.executable,
        "-m",
        "clmmd.service.cli",
        "campaign",
        "--episodes",
        str(episodes),
        "--seed",
        "7",
        "--data-dir",
        str(data_dir),
    ]


def test_campaign_on_a_terminal_shows_only_the_bar_and_the_summary(tmp_path: Path) -> None:
    data_dir = tmp_path / "elsewhere"
    code, out, err = run_under_pty(_campaign_argv(data_dir, 30), tmp_path)
    assert code == 0, (out, err)
    assert err == b""  # nothing at warning or above happened
    seen = frames(out)
    bars = [f for f in seen if f.startswith("[")]
    text = [f for f in seen if not f.startswith("[")]
    assert not [f for f in seen if f.lstrip().startswith("{")], "JSON on the terminal"
    assert bars and all(BAR.match(b) for b in bars), bars
    assert bars[-1].startswith("[" + "#" * 30 + "] 30/30")
    assert len(text) == len(SUMMARY_PREFIXES), text
    for line, prefix in zip(text, SUMMARY_PREFIXES, strict=True):
        assert line.startswith(prefix), (line, prefix)
    assert "30/30 episodes (30 successful, 0 failed, 0 skipped, 0 lost), seed 7" in text[0]
    # The hints repeat the data dir that is not the default.
    assert "runs show run_" in text[4] and f"--data-dir {data_dir}" in text[4]
    assert text[5].endswith(f"campaign --episodes 30 --seed 7 --data-dir {data_dir}")
    # The JSON log lines went to the log file instead, every one of them parsing.
    log_lines = (data_dir / "logs" / "clmmd.log").read_bytes().splitlines()
    events = {orjson.loads(x)["event"] for x in log_lines}
    assert {"campaign_started", "episode_done", "campaign_finished"} <= events


def test_campaign_piped_writes_only_json_lines(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        _campaign_argv(data_dir, 12),
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    parsed = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(p, dict) for p in parsed)
    assert b"\r" not in done.stdout and b"\x1b" not in done.stdout
    summary = parsed[-1]
    assert summary["event"] == "campaign_summary"
    assert (summary["episodes"], summary["successful"], summary["seed"]) == (12, 12, 7)
    assert all(f"--data-dir {data_dir}" in hint for hint in summary["inspect"])
    for line in done.stderr.splitlines():
        orjson.loads(line)


def test_resolve_mode() -> None:
    assert resolve_mode("auto", True) == "human"
    assert resolve_mode("auto", False) == "json"
    assert resolve_mode("json", True) == "json"
    assert resolve_mode("human", False) == "human"


def test_level_gate_passes_warnings_and_erases_the_bar_first() -> None:
    target = io.BytesIO()
    gate = LevelGate(target, "warning", erase_line=True)
    gate.write(orjson.dumps({"event": "episode_done", "level": "info"}) + b"\n")
    gate.write(orjson.dumps({"event": "episode_failed", "level": "error"}) + b"\n")
    gate.write(orjson.dumps({"event": "x", "level": "warning", "p": {"level": "debug"}}) + b"\n")
    lines = target.getvalue().split(b"\n")
    assert lines[0].startswith(b"\r\x1b[K") and b"episode_failed" in lines[0]
    assert lines[1].startswith(b"\r\x1b[K") and b'"event":"x"' in lines[1]
    assert b"episode_done" not in target.getvalue()


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [
        ("data", "clmmd runs show run_x"),
        ("my data", "clmmd runs show run_x --data-dir 'my data'"),
    ],
)
def test_command_hints_repeat_a_non_default_data_dir(data_dir: str, expected: str) -> None:
    console = Console(mode="human")
    settings = load_settings(data_dir=Path(data_dir))
    assert console.command(settings, "runs", "show", "run_x") == expected
