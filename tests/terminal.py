"""Running a command the way a person at a terminal does: stdout on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from tests.conftest import _config_variables


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any clmmd configuration of the machine running the tests."""
    hidden = set(_config_variables())
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["CLMMD_DURABLE_WRITES"] = "false"  # speed only
    env.update(extra)
    return env


def run_under_pty(argv: list[str], cwd: Path) -> tuple[int, str, bytes]:
    """Run with stdout on a pseudo-terminal (stderr on a pipe); returns (code, stdout, stderr).

    The terminal turns ``\\n`` into ``\\r\\n``; that is undone, the bar's ``\\r`` + erase-line
    redraws are kept.
    """
    master, slave = pty.openpty()
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=clean_env(),
    ) as proc:
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        assert proc.stderr is not None
        err = proc.stderr.read()
        code = proc.wait(timeout=120)
    return code, b"".join(chunks).decode().replace("\r\n", "\n"), err


def frames(terminal_text: str) -> list[str]:
    """What a person sees, one entry per drawn line (every redraw of the bar included)."""
    return [f for line in terminal_text.split("\n") for f in line.split("\r\x1b[K") if f.strip()]
