"""Shared bits of the benchmarks: result rows, the table, JSON output."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import struct
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SCRATCH = ROOT / "bench" / ".scratch"
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Row:
    """One figure: ``ratio`` is figure/target oriented so that >= 1 means the target is met."""

    name: str
    figure: float
    unit: str
    target: str
    ratio: float | None
    passed: bool | None
    note: str = ""


def scratch_root() -> Path:
    """Where benchmarks put their temporary data dirs: ``bench/.scratch``.

    The folder carries ext4's "top directory" flag (``chattr +T``) where the file system has
    it, so the allocator spreads the data dirs made in it over block groups instead of packing
    them next to the last run's. Without a journal, ext4 skips every inode freed in the last
    minutes of a block group each time it creates a file there: a run that follows another
    run's clean-up would measure that clean-up (docs/performance.md).
    """
    SCRATCH.mkdir(parents=True, exist_ok=True)
    fd = os.open(SCRATCH, os.O_RDONLY | os.O_DIRECTORY)
    # Not ext2/3/4, or no permission: OSError, and the data dirs land wherever they land.
    with contextlib.suppress(OSError):
        (flags,) = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags | _FS_TOPDIR_FL))
    os.close(fd)
    return SCRATCH


def machine() -> dict[str, object]:
    """What the figures were measured on, including how busy it was (1/5/15-minute load)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def print_table(rows: list[Row]) -> None:
    print(f"{'benchmark':<44} {'figure':>14} {'target':>16} {'ratio':>8}  result")
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        verdict = "-" if r.passed is None else ("PASS" if r.passed else "MISS")
        print(
            f"{r.name:<44} {r.figure:>10.3f} {r.unit:<3} {r.target:>16} {ratio:>8}  {verdict}"
            + (f"  ({r.note})" if r.note else "")
        )


def save(name: str, rows: list[Row], settings: dict[str, object]) -> Path:
    """Write ``bench/results/<name>.json``: the machine, the settings the benchmark ran with
    (everything a reader needs to reproduce it) and its rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "settings": settings, "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(payload, indent=2))
    return path
