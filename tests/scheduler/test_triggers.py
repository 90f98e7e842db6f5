from __future__ import annotations

import multiprocessing
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from clmmd.artifacts.base.clock import FakeClock, utc_iso
from clmmd.scheduler.triggers import (
    MAX_LINE_BYTES,
    TRIGGER_FILENAME,
    append_trigger,
    trigger_episodes,
    trigger_path,
    trigger_refresh,
)

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
WRITERS = 4
LINES_PER_WRITER = 1500


def _writer(path: str, writer: int, go: Any) -> None:
    rng = random.Random(writer)
    go.wait(60)  # all writers start together, so their appends really overlap
    for seq in range(LINES_PER_WRITER):
        # Every few lines is far longer than PIPE_BUF, where unlocked appends could interleave.
        pad = "x" * (rng.randint(5000, 20000) if seq % 7 == 0 else rng.randint(0, 200))
        append_trigger(Path(path), {"writer": writer, "seq": seq, "pad": pad})


def read_records(path: Path) -> list[dict[str, object]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [orjson.loads(line) for line in raw.split(b"\n")[:-1]]


def test_concurrent_processes_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / TRIGGER_FILENAME
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(path), w, go)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    records = read_records(path)  # every line parses: none torn or interleaved
    assert len(records) == WRITERS * LINES_PER_WRITER
    for w in range(WRITERS):
        seqs = [r["seq"] for r in records if r["writer"] == w]
        assert seqs == list(range(LINES_PER_WRITER))  # each writer's lines whole and in order


def test_oversized_record_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / TRIGGER_FILENAME
    append_trigger(path, {"n": 1})
    with pytest.raises(ValueError, match="over the 65536 limit"):
        append_trigger(path, {"pad": "x" * MAX_LINE_BYTES})
    assert read_records(path) == [{"n": 1}]
    # Exactly at the limit (newline included) is fine.
    overhead = len(orjson.dumps({"pad": ""})) + 1
    append_trigger(path, {"pad": "y" * (MAX_LINE_BYTES - overhead)})
    assert len(path.read_bytes().split(b"\n")[1]) + 1 == MAX_LINE_BYTES


def test_trigger_refresh_appends_a_refresh_record(tmp_path: Path) -> None:
    clock = FakeClock()
    data_dir = tmp_path / "data"  # created on demand
    first = trigger_refresh("out_of_range", POOL, data_dir=data_dir, clock=clock)
    second = trigger_refresh(
        "manual", POOL.lower(), data_dir=data_dir, priorities=["P2", "P0", "P2"], clock=clock
    )
    records = read_records(trigger_path(data_dir))
    assert records == [
        {
            "id": first,
            "ts": utc_iso(clock.now()),
            "type": "refresh",
            "reason": "out_of_range",
            "pool_address": POOL,
            "priorities": ["P0", "P1"],
        },
        {
            "id": second,
            "ts": utc_iso(clock.now()),
            "type": "refresh",
            "reason": "manual",
            "pool_address": POOL.lower(),
            "priorities": ["P2", "P0"],
        },
    ]
    assert first != second and len(first) == 32 and int(first, 16) >= 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "r" * 201}, "reason"),
        ({"pool_address": "0x1234"}, "pool_address"),
        ({"pool_address": "88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640aa"}, "pool_address"),
        ({"pool_address": "0x" + "g" * 40}, "pool_address"),
        ({"priorities": []}, "priorities"),
        ({"priorities": ["P5"]}, "priorities"),
    ],
)
def test_trigger_refresh_validation(tmp_path: Path, kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"reason": "out_of_range", "pool_address": POOL, **kwargs}
    with pytest.raises(ValueError) as info:
        trigger_refresh(data_dir=tmp_path, **args)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"trigger field '{field}'") and "\n" not in message
    assert not trigger_path(tmp_path).exists()


def test_trigger_episodes(tmp_path: Path) -> None:
    record_id = trigger_episodes(5, data_dir=tmp_path, clock=FakeClock())
    [record] = read_records(trigger_path(tmp_path))
    assert record == {
        "id": record_id,
        "ts": utc_iso(FakeClock().now()),
        "type": "episodes",
        "count": 5,
    }
    for bad in (0, -1, True, 2.5, 10_001):
        with pytest.raises(ValueError, match="trigger field 'count'"):
            trigger_episodes(bad, data_dir=tmp_path)  # type: ignore[arg-type]
    assert len(read_records(trigger_path(tmp_path))) == 1


def test_trigger_refresh_defaults_to_the_configured_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clmmd.scheduler.triggers import trigger_refresh as refresh

    monkeypatch.setenv("CLMMD_DATA_DIR", str(tmp_path / "d"))
    trigger_id = refresh("out_of_range", "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640")
    line = (tmp_path / "d" / "dune_triggers.jsonl").read_text()
    assert trigger_id in line and '"out_of_range"' in line
