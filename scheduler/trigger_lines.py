"""Pure reading side of the trigger file: bytes → lines → typed triggers or rejections.

:class:`LineAssembler` cuts a byte stream (fed in arbitrary chunks) into complete lines with
their line numbers and byte offsets, holding back a partial last line until its newline
arrives and never buffering more than ``max_line_bytes`` of any one line.
:func:`parse_trigger_line` validates one line into a :class:`RefreshTrigger`,
:class:`EpisodesTrigger` or a :class:`Rejection` whose one-line reason names the field and the
value at fault. :func:`reject_record` builds the line kept in the rejects file.

Nothing here does I/O or reads the clock (``rejected_at`` is passed in).
"""

from __future__ import annotations

import base64
import codecs
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from clmmd.artifacts.base.clock import parse_utc, utc_iso
from clmmd.scheduler.registry import PRIORITIES, is_pool_address
from clmmd.scheduler.triggers import MAX_EPISODES_PER_TRIGGER, MAX_LINE_BYTES, MAX_REASON_CHARS

DEFAULT_PRIORITIES: tuple[str, ...] = ("P0", "P1")
MAX_ID_CHARS = 128
#: How much of a rejected line the rejects file keeps.
EXCERPT_BYTES = 1024
# Ids become cache keys and may end up in file names: no slashes, no leading dot ("..").
_ID_RE = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}")
_TYPES = ("refresh", "episodes")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class RawLine:
    """One complete line of the file. ``data`` excludes the newline and holds at most
    ``max_line_bytes`` bytes (the head of an oversized line); ``length`` is the real length."""

    line_no: int
    offset: int
    data: bytes
    length: int


@dataclass(frozen=True, slots=True)
class RefreshTrigger:
    """Refresh ``pool_address``'s (lowercase) keys of ``priorities`` now."""

    id: str | None
    ts: datetime | None
    reason: str
    pool_address: str
    priorities: tuple[str, ...] = DEFAULT_PRIORITIES
    line_no: int = 0
    offset: int = 0


@dataclass(frozen=True, slots=True)
class EpisodesTrigger:
    """Run ``count`` episodes. ``ts`` (last, optional) is the request time when given."""

    id: str | None
    count: int
    line_no: int = 0
    offset: int = 0
    ts: datetime | None = None


Trigger = RefreshTrigger | EpisodesTrigger


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that is not a valid trigger, and why (one line naming the field and value)."""

    reason: str
    line_no: int
    offset: int


class LineAssembler:
    """Splits a byte stream into :class:`RawLine` s, starting at ``offset``/``line_no``.

    ``offset`` is always the start of the first line not yet returned (the position to
    persist), ``line_no`` the number of the last complete line returned.
    """

    def __init__(
        self, *, offset: int = 0, line_no: int = 0, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        if offset < 0 or line_no < 0 or max_line_bytes <= 0:
            raise ValueError("offset and line_no must be >= 0 and max_line_bytes > 0")
        self.offset = offset
        self.line_no = line_no
        self.max_line_bytes = max_line_bytes
        self._head = bytearray()  # first bytes of the partial line, capped
        self._pending = 0  # true length of the partial line

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished last line consumed so far (``offset`` + this = read position)."""
        return self._pending

    def feed(self, chunk: bytes) -> list[RawLine]:
        """Consume ``chunk``; return the lines it completes, in order."""
        lines: list[RawLine] = []
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            lines.append(self._complete(chunk[start:newline], terminated=True))
            start = newline + 1
        self._hold(chunk[start:])
        return lines

    def flush(self) -> RawLine | None:
        """Return the unterminated last line, if any (for a file nobody will append to again)."""
        if not self._pending:
            return None
        return self._complete(b"", terminated=False)

    def _hold(self, piece: bytes) -> None:
        room = self.max_line_bytes - len(self._head)
        if room > 0:
            self._head += piece[:room]
        self._pending += len(piece)

    def _complete(self, tail: bytes, *, terminated: bool) -> RawLine:
        self._hold(tail)
        self.line_no += 1
        line = RawLine(self.line_no, self.offset, bytes(self._head), self._pending)
        self.offset += self._pending + (1 if terminated else 0)
        self._head.clear()
        self._pending = 0
        return line


def parse_trigger_line(
    raw: RawLine, *, max_line_bytes: int = MAX_LINE_BYTES
) -> Trigger | Rejection:
    """Validate one line; the limit counts the newline, as the writer does."""

    def reject(reason: str) -> Rejection:
        return Rejection(reason, raw.line_no, raw.offset)

    if raw.length + 1 > max_line_bytes:
        return reject(f"line is {raw.length + 1} bytes, over the {max_line_bytes}-byte limit")
    if b"\x00" in raw.data:
        return reject("line holds NUL bytes (binary data)")
    try:
        raw.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(f"line is not UTF-8 text (bad byte at column {exc.start + 1})")
    if not raw.data.strip():
        return reject("empty line")
    try:
        record = orjson.loads(raw.data)
    except orjson.JSONDecodeError as exc:
        return reject(f"not JSON: {exc}")
    if not isinstance(record, dict):
        return reject(f"line is a JSON {_json_kind(record)}, not an object")
    try:
        return _build(record, raw)
    except _FieldError as exc:
        return reject(str(exc))


def reject_record(rejection: Rejection, raw: RawLine, rejected_at: datetime) -> dict[str, Any]:
    """The rejects-file line: text cut to 1 KiB, or base64 when the bytes are not text."""
    excerpt, encoding = line_excerpt(raw.data)
    return {
        "line_no": rejection.line_no,
        "offset": rejection.offset,
        "reason": rejection.reason,
        "line": excerpt,
        "line_encoding": encoding,
        "rejected_at": utc_iso(rejected_at),
    }


def line_excerpt(data: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    """The first :data:`EXCERPT_BYTES` of ``data`` as text, or as base64 when binary."""
    head = data[:EXCERPT_BYTES]
    if b"\x00" not in head:
        try:
            # final=False: a character cut by the 1 KiB limit is dropped, not an error.
            text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError:
            pass
        else:
            return text, "utf-8"
    return base64.b64encode(head).decode("ascii"), "base64"


# -- field validation -------------------------------------------------------------------


class _FieldError(ValueError):
    pass


def _show(value: object) -> str:
    """The offending value as compact JSON, cut to 60 characters (values come from JSON)."""
    if value is _MISSING:
        return "nothing (field missing)"
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return kinds.get(type(value), type(value).__name__)


def _fail(name: str, expected: str, value: object) -> _FieldError:
    return _FieldError(f"field {name!r}: expected {expected}, got {_show(value)}")


def _build(record: dict[str, Any], raw: RawLine) -> Trigger:
    if "type" not in record:
        raise _FieldError("field 'type': missing")
    kind = record["type"]
    if kind not in _TYPES:
        raise _fail("type", '"refresh" or "episodes"', kind)
    trigger_id = _optional_id(record.get("id"))
    ts = _optional_ts(record.get("ts"))
    if kind == "episodes":
        count = record.get("count", _MISSING)
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_EPISODES_PER_TRIGGER
        ):
            raise _fail("count", f"an integer 1-{MAX_EPISODES_PER_TRIGGER}", count)
        return EpisodesTrigger(trigger_id, count, raw.line_no, raw.offset, ts=ts)
    reason = record.get("reason", _MISSING)
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise _fail("reason", f"a non-blank string of at most {MAX_REASON_CHARS} chars", reason)
    pool = record.get("pool_address", _MISSING)
    if not isinstance(pool, str) or len(pool) != 42 or not is_pool_address(pool):
        raise _fail("pool_address", "0x and 40 hex digits", pool)
    return RefreshTrigger(
        id=trigger_id,
        ts=ts,
        reason=reason,
        pool_address=pool.lower(),
        priorities=_priorities(record.get("priorities")),
        line_no=raw.line_no,
        offset=raw.offset,
    )


def _optional_id(value: object) -> str | None:
    # null reads as absent: writers in other languages often emit optional fields as null.
    if value is None:
        return None
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise _fail("id", f"1-{MAX_ID_CHARS} of [A-Za-z0-9._:-], not starting with '.'", value)
    return value


def _optional_ts(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_utc(value)
        except ValueError:
            pass
    raise _fail("ts", "an ISO-8601 time with a zone", value)


def _priorities(value: object) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_PRIORITIES
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(p, str) or p not in PRIORITIES for p in value)
    ):
        raise _fail("priorities", "a non-empty list of P0-P3", value)
    return tuple(dict.fromkeys(value))


__all__ = [
    "DEFAULT_PRIORITIES",
    "EXCERPT_BYTES",
    "MAX_ID_CHARS",
    "EpisodesTrigger",
    "LineAssembler",
    "RawLine",
    "RefreshTrigger",
    "Rejection",
    "Trigger",
    "line_excerpt",
    "parse_trigger_line",
    "reject_record",
]
