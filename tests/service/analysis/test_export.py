"""Training export: window grouping, every episode once, failed/skipped, schema, bad windows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.artifacts.base.clock import FakeClock, utc_iso
from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.models import (
    EpisodeFailure,
    EpisodeMetadata,
    EpisodeResult,
    MetadataExtra,
    Proposal,
    RangeAction,
    Reward,
    RewardComponents,
    Simulation,
)
from clmmd.artifacts.store import ArtifactStore
from clmmd.env.mock import MockClmmEnv
from clmmd.service.analysis.export import export_runs, parse_window, window_start
from clmmd.service.config import load_settings
from clmmd.service.runs.campaign import run_campaign
from clmmd.service.runs.warmup import warm_mock_intel
from clmmd.service.wiring import open_intel

SCHEMA = orjson.loads(
    (Path(__file__).parents[3] / "docs" / "export-format.schema.json").read_bytes()
)
RUN_A = "run_20261123_150000_aaaa"
RUN_B = "run_20261123_150500_bbbb"
POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"


# -- a validator for the JSON Schema subset the export schema uses ----------------------------

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}
_KNOWN = {
    "$schema", "$id", "title", "description", "$defs", "$ref", "type", "enum", "properties",
    "required", "additionalProperties", "items", "minItems", "pattern", "minimum", "maximum",
    "oneOf",
}  # fmt: skip


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    unknown = set(schema) - _KNOWN
    assert not unknown, f"validator does not support {unknown} (at {path})"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return schema_errors(value, SCHEMA["$defs"][name], path)
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not schema_errors(value, s, path)]
        return [] if len(matching) == 1 else [f"{path}: matches {len(matching)} of oneOf"]
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in allowed):
            return [f"{path}: {value!r} is not of type {allowed}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        errors += [f"{path}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{path}.{key}")
            elif extra is False:
                errors.append(f"{path}: unexpected property {key!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{path}.{key}")
    return errors


# -- fabricated episodes -----------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def write_episode(
    data_dir: Path,
    run_id: str,
    index: int,
    when: datetime,
    status: str = "success",
    *,
    start: float = 3000.0,
    end: float = 3030.0,
    metadata: bool = True,
) -> str:
    store = ArtifactStore(RunLayout(data_dir, run_id), durable=False)
    store.open_run()
    episode = f"ep_{index:06d}"
    proposed = status != "no_proposal"
    proposal = Proposal(
        run_id=run_id,
        episode_id=episode,
        proposed=proposed,
        reason=None if proposed else "no proposal: snapshot failed: OSError: disk",
        pool_address=POOL if proposed else None,
        pair="WETH-USDC" if proposed else None,
        fee_pips=500 if proposed else None,
        tick_lower=195000 if proposed else None,
        tick_upper=196000 if proposed else None,
        size_usd=10_000.0 if proposed else None,
        risk_scalar=0.85 if proposed else None,
        action=RangeAction(width_ticks=1000, fee_pips=500) if proposed else None,
        regime_key="gas=low|vol=mid|flow=clean" if proposed else None,
        agent_version="clmmd-agent/0.1+s3",
        seed=index,
    )
    store.create_episode(episode, proposal)
    if status == "success":
        store.write(
            episode,
            "result.json",
            EpisodeResult(
                status="success",
                simulation=Simulation(
                    source="mock",
                    start_price_usd=start,
                    end_price_usd=end,
                    inputs={"volume_usd_per_day": 1e8, "gas_price_gwei": 12.0},
                    defaults_used=[],
                ),
                pnl_usd=5.0,
                fees_usd=10.0,
                gas_cost_usd=3.0,
                il_usd=2.0,
                time_in_range_pct=90.0,
                risk_scalar_applied=0.85,
                size_usd_applied=8500.0,
                timings_ms={},
            ),
        )
        store.write(episode, "reward.json", reward(0.25))
    elif status == "skipped":
        store.write(
            episode,
            "result.json",
            EpisodeResult(
                status="skipped",
                reason="live_risk_ack: I_UNDERSTAND_LIVE_RISK is not 'yes'",
                simulation=Simulation(source="live", gate="live_risk_ack"),
                pnl_usd=0.0,
                fees_usd=0.0,
                gas_cost_usd=0.0,
                il_usd=0.0,
                time_in_range_pct=0.0,
                risk_scalar_applied=0.0,
                size_usd_applied=0.0,
                timings_ms={},
            ),
        )
        store.write(episode, "reward.json", reward(0.0))
    else:
        store.write(
            episode,
            "failure.json",
            EpisodeFailure(
                stage="execute" if proposed else "snapshot",
                error_type="RuntimeError",
                error_message="simulator exploded",
                timestamp=utc_iso(when),
            ),
        )
    if metadata:
        store.write(
            episode,
            "metadata.json",
            EpisodeMetadata(
                run_id=run_id,
                episode_id=episode,
                agent_version="clmmd-agent/0.1+s3",
                config_hash="abc",
                exec_mode="mock",
                timestamp=utc_iso(when),
                regime_key=proposal.regime_key,
                seed=index,
                learning_update_applied=False,
                learning_update_reason="gate: mock episode and LEARN_FROM_MOCK=false",
                extra=MetadataExtra(),
            ),
        )
    return episode


def reward(total: float) -> Reward:
    return Reward(
        total=total,
        components=RewardComponents(pnl=total, fees=0.0, gas_penalty=0.0, range_penalty=0.0),
        weights={"pnl": 1.0},
    )


def read_lines(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def ids_by_window(lines: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    return {
        line["window_id"]: [(t["run_id"], t["episode_id"]) for t in line["episodes"]]
        for line in lines
    }


# -- tests -------------------------------------------------------------------------------------


def test_an_episode_exactly_on_a_boundary_goes_to_the_later_window(tmp_path: Path) -> None:
    write_episode(tmp_path, RUN_A, 1, at("2026-11-23T15:59:59.999999"))
    write_episode(tmp_path, RUN_A, 2, at("2026-11-23T16:00:00"))
    write_episode(tmp_path, RUN_A, 3, at("2026-11-23T16:59:59"))
    write_episode(tmp_path, RUN_A, 4, at("2026-11-23T17:00:00"))

    report = export_runs(tmp_path, None, "1h", tmp_path / "out.jsonl")

    lines = read_lines(tmp_path / "out.jsonl")
    assert ids_by_window(lines) == {
        "2026-11-23T15:00:00Z/1h": [(RUN_A, "ep_000001")],
        "2026-11-23T16:00:00Z/1h": [(RUN_A, "ep_000002"), (RUN_A, "ep_000003")],
        "2026-11-23T17:00:00Z/1h": [(RUN_A, "ep_000004")],
    }
    assert [(x["window_start"], x["window_end"]) for x in lines][1] == (
        "2026-11-23T16:00:00Z",
        "2026-11-23T17:00:00Z",
    )
    assert (report.windows, report.episodes) == (3, 4)


def test_every_episode_appears_exactly_once_across_runs_and_windows(tmp_path: Path) -> None:
    base = at("2026-11-23T15:52:00")
    expected = set()
    for index in range(1, 41):
        run = RUN_A if index % 3 else RUN_B
        when = base + timedelta(seconds=(index * 797) % 3600)
        expected.add(
            (
                run,
                write_episode(
                    tmp_path, run, index, when, ("success", "failed", "skipped")[index % 3]
                ),
            )
        )
    out = tmp_path / "out.jsonl"

    report = export_runs(tmp_path, None, "15m", out)

    seen = [pair for ids in ids_by_window(read_lines(out)).values() for pair in ids]
    assert len(seen) == len(expected) == 40
    assert set(seen) == expected
    assert report.runs == [RUN_A, RUN_B]
    assert report.by_status == {"success": 13, "failed": 14, "skipped": 13}
    # Several agents share windows: at least one window holds both runs.
    assert any(len(x["market_outcome"]["runs"]) == 2 for x in read_lines(out))


def test_windows_and_episodes_are_in_a_deterministic_order(tmp_path: Path) -> None:
    same = at("2026-11-23T16:10:00")
    write_episode(tmp_path, RUN_B, 1, same)
    write_episode(tmp_path, RUN_A, 2, same)
    write_episode(tmp_path, RUN_A, 1, same + timedelta(seconds=1))
    write_episode(tmp_path, RUN_A, 3, at("2026-11-23T15:10:00"))
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"

    export_runs(tmp_path, None, "1h", first)
    export_runs(tmp_path, [RUN_B, RUN_A], "1h", second)

    assert first.read_bytes() == second.read_bytes()
    assert list(ids_by_window(read_lines(first)).values()) == [
        [(RUN_A, "ep_000003")],
        [(RUN_A, "ep_000002"), (RUN_B, "ep_000001"), (RUN_A, "ep_000001")],
    ]


def test_run_ids_select_runs_and_an_unknown_run_is_named(tmp_path: Path) -> None:
    write_episode(tmp_path, RUN_A, 1, at("2026-11-23T16:10:00"))
    write_episode(tmp_path, RUN_B, 1, at("2026-11-23T16:20:00"))
    out = tmp_path / "out.jsonl"
    report = export_runs(tmp_path, [RUN_B], "1h", out)
    assert report.runs == [RUN_B]
    assert ids_by_window(read_lines(out)) == {"2026-11-23T16:00:00Z/1h": [(RUN_B, "ep_000001")]}
    with pytest.raises(LookupError, match="run_20990101_000000_ffff"):
        export_runs(tmp_path, ["run_20990101_000000_ffff"], "1h", out)


def test_failed_and_skipped_episodes_are_exported_as_such(tmp_path: Path) -> None:
    when = at("2026-11-23T16:10:00")
    write_episode(tmp_path, RUN_A, 1, when, "success", start=3000.0, end=3030.0)
    write_episode(tmp_path, RUN_A, 2, when + timedelta(minutes=1), "failed")
    write_episode(tmp_path, RUN_A, 3, when + timedelta(minutes=2), "skipped")
    write_episode(tmp_path, RUN_A, 4, when + timedelta(minutes=3), "no_proposal")
    write_episode(tmp_path, RUN_A, 5, when + timedelta(minutes=4), "success", start=2000.0,
                  end=1980.0)  # fmt: skip

    export_runs(tmp_path, None, "1h", tmp_path / "out.jsonl")

    (line,) = read_lines(tmp_path / "out.jsonl")
    ok, failed, skipped, no_proposal, ok2 = line["episodes"]
    assert ok["outcome"]["status"] == ok2["outcome"]["status"] == "success"
    assert ok["reward"]["total"] == 0.25
    assert ok["observation"]["market_inputs"] == {"volume_usd_per_day": 1e8, "gas_price_gwei": 12.0}
    assert failed["outcome"]["status"] == "failed"
    assert failed["outcome"]["pnl_usd"] is None and failed["reward"] is None
    assert failed["outcome"]["failure"] == {
        "stage": "execute",
        "error_type": "RuntimeError",
        "error_message": "simulator exploded",
    }
    assert skipped["outcome"]["status"] == "skipped"
    assert skipped["outcome"]["reason"].startswith("live_risk_ack")
    assert skipped["reward"]["total"] == 0.0
    assert no_proposal["action"]["proposed"] is False
    assert "snapshot failed" in no_proposal["action"]["reason"]
    assert no_proposal["outcome"]["failure"]["stage"] == "snapshot"
    market = line["market_outcome"]
    assert (market["episodes"], market["successful"], market["failed"], market["skipped"]) == (
        5,
        2,
        2,
        1,
    )
    # First successful episode's start to the last one's end; per-episode mean beside it.
    assert (market["start_price_usd"], market["end_price_usd"]) == (3000.0, 1980.0)
    assert market["price_change_pct"] == pytest.approx(-34.0)
    assert market["mean_episode_price_change_pct"] == pytest.approx((1.0 - 1.0) / 2)
    assert market["gas_cost_usd_total"] == 6.0 and market["reward_mean"] == 0.25
    assert schema_errors(line, SCHEMA) == []


def test_unfinished_and_unreadable_episodes_are_reported_not_guessed(tmp_path: Path) -> None:
    when = at("2026-11-23T16:10:00")
    write_episode(tmp_path, RUN_A, 1, when)
    write_episode(tmp_path, RUN_A, 2, when, metadata=False)  # still running
    broken = write_episode(tmp_path, RUN_A, 3, when)
    layout = RunLayout(tmp_path, RUN_A)
    (layout.episode_dir(broken) / "reward.json").unlink()
    (layout.episode_dir(broken) / "reward.json").write_bytes(b'{"total": ')

    report = export_runs(tmp_path, None, "1h", tmp_path / "out.jsonl")

    assert report.episodes == 1
    reasons = {n.episode_id: n.reason for n in report.not_exported}
    assert set(reasons) == {"ep_000002", "ep_000003"}
    assert "no metadata.json" in reasons["ep_000002"]
    assert reasons["ep_000003"].startswith("reward.json: invalid JSON")


@pytest.mark.parametrize("bad", ["", "0h", "1x", "h", "-1h", "1.5h", "1 h", "01h", "1H", "1hour"])
def test_a_bad_window_is_a_value_error_naming_it(tmp_path: Path, bad: str) -> None:
    write_episode(tmp_path, RUN_A, 1, at("2026-11-23T16:10:00"))
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        export_runs(tmp_path, None, bad, out)
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("6h", 21600), ("1d", 86400)]
)
def test_window_strings(text: str, seconds: int) -> None:
    assert parse_window(text) == timedelta(seconds=seconds)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["1s", "45s", "15m", "1h", "7h", "1d", "3d"]),
)
def test_window_start_holds_the_moment_and_is_aligned(moment: datetime, window: str) -> None:
    width = parse_window(window)
    start = window_start(moment, width)
    assert start <= moment < start + width
    assert (start - datetime(1970, 1, 1, tzinfo=UTC)) % width == timedelta(0)
    assert window_start(start, width) == start


def test_the_output_is_replaced_atomically_without_residue(tmp_path: Path) -> None:
    write_episode(tmp_path, RUN_A, 1, at("2026-11-23T16:10:00"))
    out = tmp_path / "exports" / "train.jsonl"
    out.parent.mkdir()
    out.write_bytes(b"old export\n")
    export_runs(tmp_path, None, "1d", out)
    assert read_lines(out)[0]["window_id"] == "2026-11-23T00:00:00Z/1d"
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.jsonl"]


def test_the_validator_catches_what_the_schema_forbids(tmp_path: Path) -> None:
    write_episode(tmp_path, RUN_A, 1, at("2026-11-23T16:10:00"))
    export_runs(tmp_path, None, "1h", tmp_path / "out.jsonl")
    (line,) = read_lines(tmp_path / "out.jsonl")
    assert schema_errors(line, SCHEMA) == []
    broken = orjson.loads(orjson.dumps(line))
    del broken["window_id"]
    broken["episodes"][0]["outcome"]["status"] = "exploded"
    broken["episodes"][0]["action"]["tick_lower"] = "low"
    broken["market_outcome"]["surprise"] = 1
    errors = "\n".join(schema_errors(broken, SCHEMA))
    assert "missing 'window_id'" in errors
    assert "'exploded' not in" in errors
    assert "tick_lower" in errors
    assert "unexpected property 'surprise'" in errors


async def test_a_real_mock_campaign_exports_lines_that_match_the_schema(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", seed=2, durable_writes=False)
    clock = FakeClock(at("2026-11-23T15:59:58"))
    stack = open_intel(settings, clock)
    try:
        await warm_mock_intel(stack.cache, stack.registry, clock, list(settings.pools), 2)
        await run_campaign(settings, env=MockClmmEnv(), intel=stack.intel, episodes=3, clock=clock)
        clock.advance(5)  # the next run's episodes start in the next hour
        await run_campaign(settings, env=MockClmmEnv(), intel=stack.intel, episodes=4, clock=clock)
    finally:
        stack.close()
    out = tmp_path / "export.jsonl"

    report = export_runs(settings.data_dir, None, "1h", out)

    lines = read_lines(out)
    assert report.episodes == 7 and report.not_exported == []
    assert [len(x["episodes"]) for x in lines] == [3, 4]
    for line in lines:
        assert schema_errors(line, SCHEMA) == []
        for trajectory in line["episodes"]:
            assert trajectory["observation"]["intel_hygiene"]["fresh_pct"] == 100.0
            assert trajectory["observation"]["market_inputs"]["price_usd"] > 0
            assert trajectory["action"]["width_ticks"] > 0
        assert line["market_outcome"]["start_price_usd"] > 0
