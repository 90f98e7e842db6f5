"""Every ERROR log line tells the operator what to do: a static check of every call site."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "scheduler", "agent", "env", "artifacts")


def _error_calls() -> list[tuple[Path, ast.Call]]:
    calls = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("error", "critical", "exception")
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "log"
                ):
                    calls.append((path, node))
    return calls


def test_every_error_log_line_has_a_hint() -> None:
    calls = _error_calls()
    assert len(calls) > 10  # the scan finds the call sites at all
    missing = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path, call in calls
        if not any(k.arg == "hint" for k in call.keywords)
    ]
    assert not missing, f"log.error without hint=...: {missing}"
