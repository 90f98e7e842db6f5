from __future__ import annotations

import base64
import itertools
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clmmd.artifacts.base.clock import FakeClock, utc_iso
from clmmd.scheduler.trigger_lines import (
    DEFAULT_PRIORITIES,
    EXCERPT_BYTES,
    EpisodesTrigger,
    LineAssembler,
    RawLine,
    RefreshTrigger,
    Rejection,
    line_excerpt,
    parse_trigger_line,
    reject_record,
)
from clmmd.scheduler.triggers import (
    MAX_LINE_BYTES,
    trigger_episodes,
    trigger_path,
    trigger_refresh,
)

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"


def raw_of(data: bytes, line_no: int = 7, offset: int = 123) -> RawLine:
    return RawLine(line_no=line_no, offset=offset, data=data, length=len(data))


def parse_record(record: dict[str, object]) -> RefreshTrigger | EpisodesTrigger | Rejection:
    return parse_trigger_line(raw_of(orjson.dumps(record)))


def refresh(**fields: object) -> dict[str, object]:
    record: dict[str, object] = {"type": "refresh", "reason": "out_of_range", "pool_address": POOL}
    record.update(fields)
    return record


# -- LineAssembler ----------------------------------------------------------------------

line_bodies = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20)


@given(bodies=line_bodies, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_lines_are_the_same_however_the_stream_is_chunked(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(body + b"\n" for body in bodies)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    assembler = LineAssembler()
    lines: list[RawLine] = []
    for start, end in itertools.pairwise(points):
        lines += assembler.feed(stream[start:end])
    assert [line.data for line in lines] == bodies
    assert [line.line_no for line in lines] == list(range(1, len(bodies) + 1))
    for line in lines:  # each offset points at the line's first byte in the stream
        assert stream[line.offset : line.offset + line.length + 1] == line.data + b"\n"
    assert assembler.offset == len(stream)
    assert assembler.pending_bytes == 0


def test_partial_last_line_is_held_until_its_newline() -> None:
    assembler = LineAssembler(offset=100, line_no=4)
    assert assembler.feed(b'{"a":1}\n{"b":') == [RawLine(5, 100, b'{"a":1}', 7)]
    assert (assembler.offset, assembler.pending_bytes) == (108, 5)
    assert assembler.feed(b"2}") == []
    assert assembler.feed(b"\n") == [RawLine(6, 108, b'{"b":2}', 7)]
    assert (assembler.offset, assembler.line_no, assembler.pending_bytes) == (116, 6, 0)


def test_oversized_line_keeps_only_its_head_but_counts_every_byte() -> None:
    assembler = LineAssembler(max_line_bytes=16)
    for _ in range(100):
        assert assembler.feed(b"x" * 1000) == []
    line, following = assembler.feed(b"tail\nnext\n")
    assert line.data == b"x" * 16
    assert line.length == 100_004
    assert following == RawLine(2, 100_005, b"next", 4)


def test_flush_returns_an_unterminated_last_line_once() -> None:
    assembler = LineAssembler()
    assembler.feed(b"one\ntwo")
    assert assembler.flush() == RawLine(2, 4, b"two", 3)
    assert assembler.flush() is None
    assert assembler.offset == 7


# -- valid lines ------------------------------------------------------------------------


def test_lines_written_by_the_trigger_helpers_parse_back(tmp_path: Path) -> None:
    clock = FakeClock()
    refresh_id = trigger_refresh(
        "out_of_range", POOL, data_dir=tmp_path, priorities=["P2", "P0"], clock=clock
    )
    episodes_id = trigger_episodes(12, data_dir=tmp_path, clock=clock)
    lines = LineAssembler().feed(trigger_path(tmp_path).read_bytes())
    first, second = (parse_trigger_line(line) for line in lines)
    assert first == RefreshTrigger(
        id=refresh_id,
        ts=clock.now(),
        reason="out_of_range",
        pool_address=POOL.lower(),
        priorities=("P2", "P0"),
        line_no=1,
        offset=0,
    )
    assert second == EpisodesTrigger(
        episodes_id, 12, line_no=2, offset=lines[1].offset, ts=clock.now()
    )


def test_refresh_defaults_and_normalisation() -> None:
    parsed = parse_record(refresh(priorities=["P1", "P1", "P3"], extra="ignored"))
    assert isinstance(parsed, RefreshTrigger)
    assert parsed.priorities == ("P1", "P3")
    assert parsed.id is None and parsed.ts is None
    assert parse_record(refresh(id=None, ts=None)) == parse_record(refresh())
    default = parse_record(refresh())
    assert isinstance(default, RefreshTrigger) and default.priorities == DEFAULT_PRIORITIES


def test_ts_with_an_offset_is_converted_to_utc() -> None:
    parsed = parse_record(refresh(ts="2026-01-01T02:00:00+02:00"))
    assert isinstance(parsed, RefreshTrigger) and parsed.ts is not None
    assert utc_iso(parsed.ts) == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("trigger_id", ["a", "abc-DEF_1.2:3", "x" * 128, "0123"])
def test_acceptable_ids(trigger_id: str) -> None:
    parsed = parse_record(refresh(id=trigger_id))
    assert isinstance(parsed, RefreshTrigger) and parsed.id == trigger_id


@pytest.mark.parametrize("count", [1, 10_000])
def test_episode_count_bounds_are_inclusive(count: int) -> None:
    parsed = parse_record({"type": "episodes", "count": count})
    assert isinstance(parsed, EpisodesTrigger) and parsed.count == count


# -- rejected lines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected_in_reason"),
    [
        ({"reason": "x", "pool_address": POOL}, "field 'type': missing"),
        (refresh(type="rebalance"), '"rebalance"'),
        (refresh(type=None), "field 'type'"),
        (refresh(reason=""), "field 'reason'"),
        (refresh(reason="   "), "field 'reason'"),
        (refresh(reason="r" * 201), "field 'reason'"),
        (refresh(reason=7), "got 7"),
        ({"type": "refresh", "pool_address": POOL}, "field 'reason': expected"),
        (refresh(pool_address="0x1234"), '"0x1234"'),
        (refresh(pool_address=POOL + "\n"), "field 'pool_address'"),
        (refresh(pool_address=POOL[:-1] + "g"), "field 'pool_address'"),
        ({"type": "refresh", "reason": "x"}, "field 'pool_address': expected"),
        (refresh(priorities=[]), "field 'priorities'"),
        (refresh(priorities=["P4"]), '["P4"]'),
        (refresh(priorities="P0"), "field 'priorities'"),
        (refresh(id="../../etc"), '"../../etc"'),
        (refresh(id="a/b"), "field 'id'"),
        (refresh(id=".."), "field 'id'"),
        (refresh(id=""), "field 'id'"),
        (refresh(id="x" * 129), "field 'id'"),
        (refresh(id=42), "got 42"),
        (refresh(id="naïve"), "field 'id'"),
        (refresh(ts="yesterday"), '"yesterday"'),
        (refresh(ts="2026-01-01T00:00:00"), "field 'ts'"),
        (refresh(ts=1700000000), "field 'ts'"),
        ({"type": "episodes"}, "field 'count': expected"),
        ({"type": "episodes", "count": 0}, "got 0"),
        ({"type": "episodes", "count": 10_001}, "got 10001"),
        ({"type": "episodes", "count": True}, "got true"),
        ({"type": "episodes", "count": "5"}, 'got "5"'),
        ({"type": "episodes", "count": 2.0}, "field 'count'"),
    ],
)
def test_invalid_fields_are_rejected_naming_field_and_value(
    record: dict[str, object], expected_in_reason: str
) -> None:
    parsed = parse_record(record)
    assert isinstance(parsed, Rejection)
    assert expected_in_reason in parsed.reason
    assert (parsed.line_no, parsed.offset) == (7, 123)
    assert "\n" not in parsed.reason


@pytest.mark.parametrize(
    ("data", "expected_in_reason"),
    [
        (b"", "empty line"),
        (b"   \r", "empty line"),
        (b"{not json", "not JSON"),
        (b'["type", "refresh"]', "JSON array, not an object"),
        (b'"refresh"', "JSON string, not an object"),
        (b"42", "JSON number, not an object"),
        (b"\xff\xfe\x00binary", "NUL"),
        (b'{"type": "episodes", "count": 1, "x": "\xe9"}', "not UTF-8"),
        (b'{"type": "episodes", "count": 1}\x00', "NUL"),
    ],
)
def test_malformed_lines_are_rejected(data: bytes, expected_in_reason: str) -> None:
    parsed = parse_trigger_line(raw_of(data))
    assert isinstance(parsed, Rejection)
    assert expected_in_reason in parsed.reason


def test_line_limit_counts_the_newline_like_the_writer() -> None:
    padded = b'{"type": "episodes", "count": 1, "pad": "' + b"p" * 100 + b'"}'
    limit = len(padded) + 1
    assert isinstance(parse_trigger_line(raw_of(padded), max_line_bytes=limit), EpisodesTrigger)
    too_long = parse_trigger_line(raw_of(padded + b" "), max_line_bytes=limit)
    assert isinstance(too_long, Rejection)
    assert f"{limit + 1} bytes" in too_long.reason


def test_oversized_line_is_rejected_from_its_length_without_parsing_its_head() -> None:
    head = orjson.dumps({"type": "episodes", "count": 1})  # a valid head of a huge line
    parsed = parse_trigger_line(RawLine(1, 0, head, MAX_LINE_BYTES))
    assert isinstance(parsed, Rejection)
    assert "over the 65536-byte limit" in parsed.reason


@given(st.binary(max_size=300))
def test_any_bytes_give_a_trigger_or_a_rejection(data: bytes) -> None:
    parsed = parse_trigger_line(raw_of(data.replace(b"\n", b"")))
    assert isinstance(parsed, RefreshTrigger | EpisodesTrigger | Rejection)


# -- the rejects-file record ------------------------------------------------------------


def test_reject_record_keeps_text_cut_to_one_kib() -> None:
    clock = FakeClock()
    data = b"{" + "é".encode() * 2000
    raw = raw_of(data)
    rejection = parse_trigger_line(raw)
    assert isinstance(rejection, Rejection)
    record = reject_record(rejection, raw, clock.now() + timedelta(seconds=1))
    assert record["line_no"] == 7 and record["offset"] == 123
    assert record["reason"] == rejection.reason
    assert record["rejected_at"] == "2026-01-01T00:00:01Z"
    assert record["line_encoding"] == "utf-8"
    # "{" then two-byte characters: the character cut by the 1 KiB limit is dropped.
    assert record["line"] == "{" + "é" * ((EXCERPT_BYTES - 1) // 2)


def test_binary_excerpts_are_base64_of_the_first_kib() -> None:
    data = bytes(range(256)) * 8
    text, encoding = line_excerpt(data)
    assert encoding == "base64"
    assert base64.b64decode(text) == data[:EXCERPT_BYTES]
    assert line_excerpt(b"\xffabc") == (base64.b64encode(b"\xffabc").decode(), "base64")
