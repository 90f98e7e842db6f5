"""clmmd sweep on Ray (ray.init(num_cpus=2)): the same bytes as the serial run. Needs the
scale extra (make test-extras)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

ray = pytest.importorskip("ray", reason="the scale extra is not installed (make test-extras)")

from clmmd.artifacts.base.clock import FakeClock  # noqa: E402
from clmmd.env.base import KNOWN_POOLS  # noqa: E402
from clmmd.service.analysis.sweep import SweepGrid, run_sweep  # noqa: E402
from clmmd.service.analysis.sweep_exec import RayExecutor, SerialExecutor  # noqa: E402
from clmmd.service.analysis.sweep_grid import parse_arms  # noqa: E402
from clmmd.service.config import Settings, load_settings  # noqa: E402
from tests.service.analysis.conftest import REPLAY_POOL  # noqa: E402

pytestmark = pytest.mark.extras
RUN_ID = "run_20261202_120000_abcd"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _files(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "sweep.json"
    }


async def test_serial_and_ray_write_the_same_bytes(tmp_path: Path, local_ray: None) -> None:
    settings = load_settings(data_dir=tmp_path / "data", durable_writes=False)
    grid = SweepGrid(tuple(KNOWN_POOLS.values()), parse_arms("policy,5,20"), (1, 2, 3), 8)
    await _same_bytes(tmp_path, settings, grid)


async def test_serial_and_ray_write_the_same_bytes_on_the_replayed_market(
    tmp_path: Path, local_ray: None, replay_history_file: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        durable_writes=False,
        market="replay",
        replay_history=replay_history_file,
    )
    grid = SweepGrid((REPLAY_POOL,), parse_arms("policy,2.5,5,20"), (1, 2), 10)
    await _same_bytes(tmp_path, settings, grid)
    result = orjson.loads(next((tmp_path / "ray").glob("episodes/*/result.json")).read_bytes())
    assert result["simulation"]["market"] == "replay"


async def _same_bytes(tmp_path: Path, settings: Settings, grid: SweepGrid) -> None:
    runs = {}
    for name, executor in (("serial", SerialExecutor()), ("ray", RayExecutor())):
        result = await run_sweep(
            settings, grid, executor, FakeClock(), run_id=RUN_ID, batch_size=25
        )
        # The same data dir and run id for both (config_hash covers the data dir): move the
        # first run aside before the second is written.
        runs[name] = result.layout.run_dir.rename(tmp_path / name)
        assert result.stats.executor == name
    serial, on_ray = (_files(runs[k]) for k in ("serial", "ray"))
    assert len(serial) > grid.size * 4
    assert serial.keys() == on_ray.keys()
    different = [name for name in serial if serial[name] != on_ray[name]]
    assert different == []
    documents = [orjson.loads((runs[k] / "sweep.json").read_bytes()) for k in ("serial", "ray")]
    for key in ("grid", "evaluations", "cells"):
        assert orjson.dumps(documents[0][key]) == orjson.dumps(documents[1][key])
    execution = documents[1]["execution"]
    assert execution["executor"] == "ray" and execution["workers"] == 2
    assert execution["tasks"] == -(-grid.size // 25)
