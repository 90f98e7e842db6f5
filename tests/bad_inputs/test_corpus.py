"""Feeds every case of :mod:`tests.bad_inputs.corpus` through the real entry points: the CLI
(exit 2, one stderr line naming the field), the trigger tail (rejected with its line number,
the good lines around it still dispatched), the registry loader, the Dune client against a
scripted server and the Gateway response models. Nothing may be written outside the data dir
and nothing already there may be lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from clmmd.artifacts.base.clock import FakeClock
from clmmd.env import gateway_models
from clmmd.env.gateway_errors import GatewayError
from clmmd.scheduler.dune import DuneClient, DuneError
from clmmd.scheduler.registry import RegistryError, load_registry
from clmmd.scheduler.trigger_ledger import TriggerLedger
from clmmd.scheduler.trigger_lines import EpisodesTrigger, RefreshTrigger
from clmmd.scheduler.trigger_tail import REJECTS_FILENAME, TriggerTail
from clmmd.scheduler.triggers import trigger_path
from clmmd.service.cli.main import main
from tests.bad_inputs.corpus import (
    ALL,
    CLI,
    CONFIG,
    DUNE,
    GATEWAY,
    POOL,
    REGISTRY,
    TRIGGER_LINES,
    Case,
)

KEY = "dune-key-corpus-5c1d8e7f2a9b"
GOOD_LINE = b'{"id": "good-1", "type": "episodes", "count": 1}\n'


def _ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


class Sandbox:
    """A working dir and a data dir with a trigger file that must survive untouched."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.cwd = root / "cwd"
        self.cwd.mkdir()
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        trigger_path(self.data_dir).write_bytes(GOOD_LINE)
        monkeypatch.chdir(self.cwd)
        monkeypatch.setenv("CLMMD_DATA_DIR", str(self.data_dir))

    def check_untouched(self, allowed: set[str]) -> None:
        assert list(self.cwd.iterdir()) == [], "something was written to the working dir"
        assert {p.name for p in self.root.iterdir()} <= {"cwd", "data", *allowed}
        assert trigger_path(self.data_dir).read_bytes() == GOOD_LINE, "trigger file changed"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    return Sandbox(tmp_path, monkeypatch)


def _run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {lines}"
    return lines[0]


@pytest.mark.parametrize("case", CONFIG, ids=_ids(CONFIG))
def test_config_value(
    case: Case,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    allowed = set()
    if "file" in case.extra:
        (sandbox.root / "bad.toml").write_text(str(case.extra["file"]))
        allowed.add("bad.toml")
    assert isinstance(case.given, dict)
    for name, value in case.given.items():
        monkeypatch.setenv(name, value.replace("{tmp}", str(sandbox.root)))
    command = ["refresh", "--once"] if "INTEL_DATA_SOURCE" in case.given else ["status"]
    if "CLMMD_ENABLE_QUERIES" in case.given:
        command = ["registry"]
    assert _run_cli(command) == 2
    line = _one_line(capsys.readouterr().err)
    for fragment in case.expect:
        assert fragment in line, line
    sandbox.check_untouched(allowed)


@pytest.mark.parametrize("case", CLI, ids=_ids(CLI))
def test_cli_argument(case: Case, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(case.given, list)
    assert _run_cli(case.given) == 2
    line = _one_line(capsys.readouterr().err)
    for fragment in case.expect:
        assert fragment in line, line
    sandbox.check_untouched(set())


@pytest.fixture
def ledger(sandbox: Sandbox) -> Iterator[TriggerLedger]:
    opened = TriggerLedger.open(sandbox.data_dir, FakeClock().now(), durable=False)
    yield opened
    opened.close()


@pytest.mark.parametrize("case", TRIGGER_LINES, ids=_ids(TRIGGER_LINES))
async def test_trigger_line(case: Case, sandbox: Sandbox, ledger: TriggerLedger) -> None:
    assert isinstance(case.given, bytes)
    path = trigger_path(sandbox.data_dir)
    good_after = (
        orjson.dumps({"id": "good-2", "type": "refresh", "reason": "r", "pool_address": POOL})
        + b"\n"
    )
    path.write_bytes(GOOD_LINE + case.given + b"\n" + good_after)
    seen: list[str | None] = []

    async def on_refresh(trigger: RefreshTrigger) -> None:
        seen.append(trigger.id)

    async def on_episodes(trigger: EpisodesTrigger) -> None:
        seen.append(trigger.id)

    tail = TriggerTail(
        sandbox.data_dir, ledger, FakeClock(), on_refresh=on_refresh, on_episodes=on_episodes
    )
    try:
        report = await tail.drain_once()
    finally:
        tail.close()
    assert seen == ["good-1", "good-2"]  # nothing around the bad line was lost
    assert report.rejected == 1
    (reject,) = [
        orjson.loads(x) for x in (sandbox.data_dir / REJECTS_FILENAME).read_bytes().splitlines()
    ]
    assert reject["line_no"] == 2
    for fragment in case.expect:
        assert fragment in reject["reason"], reject["reason"]
    assert len(orjson.dumps(reject)) < 4096  # a huge line is kept as an excerpt only
    # Path-like values never became files anywhere.
    names = {p.name for p in sandbox.root.rglob("*")}
    assert not {"etc", "passwd", "hidden", ".hidden"} & names


@pytest.mark.parametrize("case", REGISTRY, ids=_ids(REGISTRY))
def test_registry_toml(
    case: Case,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert isinstance(case.given, str)
    path = sandbox.root / "queries.toml"
    path.write_text(case.given)
    with pytest.raises(RegistryError) as raised:
        load_registry(path)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in case.expect:
        assert fragment in message, message
    # The same file through the CLI: exit 2 and the same one line.
    monkeypatch.setenv("CLMMD_QUERIES_FILE", str(path))
    assert _run_cli(["registry"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert all(fragment in line for fragment in case.expect), line
    sandbox.check_untouched({"queries.toml"})


def _scripted_dune(script: dict[str, tuple[int, bytes]]) -> web.Application:
    def answer(endpoint: str, default: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if endpoint in script:
                status, body = script[endpoint]
                return web.Response(
                    status=status,
                    body=body.replace(b"{KEY}", KEY.encode()),
                    content_type="application/json",
                )
            return web.json_response(default)

        return handler

    rows = {"state": "QUERY_STATE_COMPLETED", "result": {"rows": [{"x": 1}], "metadata": {}}}
    app = web.Application()
    app.router.add_post(
        "/api/v1/query/{q}/execute",
        answer("execute", {"execution_id": "E1", "state": "QUERY_STATE_PENDING"}),
    )
    app.router.add_get(
        "/api/v1/execution/{e}/status", answer("status", {"state": "QUERY_STATE_COMPLETED"})
    )
    app.router.add_get("/api/v1/execution/{e}/results", answer("results", rows))
    app.router.add_get("/api/v1/query/{q}/results", answer("latest", rows))
    return app


@pytest.mark.parametrize("case", DUNE, ids=_ids(DUNE))
async def test_dune_response(case: Case, aiohttp_unused_port: Any = None) -> None:
    assert isinstance(case.given, dict)
    runner = web.AppRunner(_scripted_dune(case.given))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = DuneClient(
        f"http://127.0.0.1:{port}/api/v1", KEY, FakeClock(), max_retries=0, poll_interval_s=0.01
    )
    try:
        with pytest.raises(DuneError) as raised:
            if "latest" in case.given:
                await client.latest_results(1, {"pool_address": "0xabc"})
            else:
                await client.execute_query(1, {"pool_address": "0xabc"})
    finally:
        await client.close()
        await runner.cleanup()
    message = str(raised.value)
    assert KEY not in message and KEY not in repr(raised.value) and KEY not in repr(client)
    for fragment in case.expect:
        assert fragment in message, message


@pytest.mark.parametrize("case", GATEWAY, ids=_ids(GATEWAY))
def test_gateway_response(case: Case) -> None:
    assert isinstance(case.given, tuple)
    model_name, body = case.given
    model = getattr(gateway_models, model_name)
    with pytest.raises(GatewayError) as raised:
        model.parse(body)
    message = str(raised.value)
    for fragment in case.expect:
        assert fragment in message, message


def test_corpus_size() -> None:
    sizes = {name: len(cases) for name, cases in ALL.items()}
    assert sum(sizes.values()) >= 60, sizes
    assert all(size >= 5 for size in sizes.values()), sizes
