"""Shared fixtures: JSON logging captured per test, a fake clock, a temporary data dir."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from clmmd.artifacts.base.clock import FakeClock
from clmmd.service.logging import SINKS, configure_logging

# The fake Gateway and a client on it (`gateway`, `client`), shared by the env and CLI tests.
pytest_plugins = ["tests.fakes.gateway_fixtures"]

# The end-to-end suite (real Gateway, local chain) runs in `make e2e` only (CLMMD_E2E=1).
collect_ignore_glob = [] if os.environ.get("CLMMD_E2E") == "1" else ["e2e/*"]


class CapturedLogs:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    @property
    def text(self) -> str:
        return self.buffer.getvalue().decode()

    def lines(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.buffer.getvalue().splitlines() if line]

    def events(self, name: str) -> list[dict[str, object]]:
        return [line for line in self.lines() if line.get("event") == name]


@pytest.fixture(autouse=True)
def captured_logs() -> Iterator[CapturedLogs]:
    logs = CapturedLogs()
    configure_logging("debug", stream=logs.buffer)
    yield logs
    SINKS.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("CLMMD_DATA_DIR", str(path))
    return path


def _config_variables() -> list[str]:
    from pydantic import AliasChoices

    from clmmd.service.config import Settings

    names = ["CLMMD_CONFIG_FILE"]
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            names += [str(c).upper() for c in field.validation_alias.choices]
    return names


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration from the machine running the tests leaks into them."""
    for name in _config_variables():
        monkeypatch.delenv(name, raising=False)
