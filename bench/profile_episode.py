"""Where an episode's CPU time goes: the breakdown quoted in docs/performance.md.

Runs the in-process mock campaign of ``bench/campaign.py`` (non-durable writes unless
``--durable``, 4 episode workers, log level warning) and measures:

1. CPU per episode (``getrusage``: user and system, all threads; the event-loop thread alone
   via ``RUSAGE_THREAD``) and wall-clock episodes/s, without any profiler;
2. the same campaign under ``cProfile`` in every thread, timed with each thread's own CPU clock,
   its functions grouped by what they do (simulation, agent, intel, pydantic, JSON encoding,
   logging, event loop and thread hops, file-system calls, runner/artifact code);
3. system calls per episode, counted by ``strace -f -c`` on two campaigns of different
   lengths (the difference divided by the extra episodes, so start-up does not count);
4. what creating one file costs the kernel in the data dir right now, and how that cost grows
   once files nearby were deleted (ext4 without a journal skips recently freed inodes; last,
   because the probe's own deletions slow down file creation nearby for a few minutes).

    python bench/profile_episode.py [--episodes 1000] [--durable] [--write-doc]

``--durable`` profiles the campaign ``make bench`` compares with the disk limit: durable writes,
in writer processes (not profiled; their system calls are counted). ``--write-doc`` replaces the
generated part of the matching profile section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, machine
from campaign import create_files, files_per_episode, measure_in_process, quiet_data_dir

from clmmd.service.logging import configure_logging
from clmmd.service.runs.campaign import WRITER_PROCESSES_FROM

DOC = ROOT / "docs" / "performance.md"
BEGIN = "<!-- profile_episode.py: begin -->"
END = "<!-- profile_episode.py: end -->"
#: The block ``--durable --write-doc`` rewrites.
BEGIN_DURABLE = "<!-- profile_episode.py --durable: begin -->"
END_DURABLE = "<!-- profile_episode.py --durable: end -->"
WORKERS = 4

#: (category, test on "file:function" of a profiled function), first match wins.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("pydantic validation and model_dump", ("pydantic",)),
    ("JSON encoding (orjson)", ("orjson",)),
    ("logging (structlog, log sinks)", ("structlog", "/service/logging.py")),
    ("simulation (env/, numpy)", ("/env/", "numpy")),
    ("agent: proposal, reward, learning gates", ("/agent/",)),
    ("intel snapshot (scheduler/, cache)", ("/scheduler/", "diskcache", "sqlite3")),
    (
        "file-system calls (os, pathlib)",
        ("posix.", "pathlib", "/os.py", "genericpath", "fcntl", "posixpath"),
    ),
    (
        "event loop and thread hops",
        (
            "asyncio",
            "concurrent/futures",
            "threading.py",
            "queue",
            "selectors",
            "_thread",
            "select.epoll",
            "_socket",
            "contextvars",
            "_contextvars",
        ),
    ),
    ("episode runner, artifact store (our Python)", ("/service/", "/artifacts/")),
]
#: System calls reported one by one (the rest are summed as "other").
SYSCALLS = [
    "openat",
    "write",
    "close",
    "mkdir",
    "mkdirat",
    "link",
    "unlink",
    "rename",
    "renameat",
    "fadvise64",
    "fsync",
    "flock",
    "newfstatat",
    "fstat",
    "statx",
    "getrandom",
    "getpid",
    "futex",
    "epoll_wait",
    "sendto",
    "recvfrom",
    "read",
]


def category(key: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in key for n in needles):
            return name
    return "other (builtins, stdlib)"


async def _campaign(data_dir: Path, episodes: int, durable: bool) -> dict[str, float]:
    main_before = resource.getrusage(resource.RUSAGE_THREAD)
    measure, layout = await measure_in_process(data_dir, episodes, WORKERS, durable=durable)
    main_after = resource.getrusage(resource.RUSAGE_THREAD)
    main_ms = 1000.0 * (
        main_after.ru_utime - main_before.ru_utime + main_after.ru_stime - main_before.ru_stime
    )
    return {
        "episodes_per_s": measure.per_s,
        "user_ms": measure.user_ms,
        "sys_ms": measure.sys_ms,
        "cpu_ms": measure.cpu_ms,
        # Includes the intel warm-up, a few ms over the whole campaign.
        "loop_thread_ms": main_ms / episodes,
        "inodes_per_episode": files_per_episode(layout),
    }


def cpu_split(root: Path, episodes: int, durable: bool) -> dict[str, float]:
    return asyncio.run(_campaign(root / "plain", episodes, durable))


def profiled(root: Path, episodes: int, durable: bool) -> dict[str, float]:
    """Share of profiled CPU time per category, over every thread of the campaign (not its
    writer processes: a durable campaign's writes are theirs)."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_in_thread(*_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.enable()

    main = cProfile.Profile(time.thread_time)
    profiles.append(main)
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        asyncio.run(_campaign(root / "profiled", episodes, durable))
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    totals: Counter[str] = Counter()
    for profile in profiles:
        profile.create_stats()
        stats: dict[Any, Any] = profile.stats  # type: ignore[attr-defined]
        for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.items():
            totals[category(f"{filename}:{function}")] += tottime
    total = sum(totals.values())
    return {name: seconds / total for name, seconds in totals.most_common()}


def _strace_counts(root: Path, episodes: int, log_level: str, durable: bool) -> Counter[str]:
    out = root / f"strace-{episodes}.txt"
    subprocess.run(
        [
            "strace",
            "-f",
            "-c",
            "-o",
            str(out),
            sys.executable,
            __file__,
            "--child",
            str(root / f"strace-{episodes}"),
            "--episodes",
            str(episodes),
            "--log-level",
            log_level,
            *(["--durable"] if durable else []),
        ],
        check=True,
        cwd=Path(__file__).parent,
        stdout=subprocess.DEVNULL,
    )
    counts: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.fullmatch(r"[\d.]+", fields[0]) and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    return counts


def syscalls(
    root: Path, short: int, long: int, log_level: str, durable: bool
) -> dict[str, float] | None:
    """System calls per episode: (calls in a long campaign - in a short one) / extra episodes
    (``-f``: a durable campaign's writer processes included)."""
    if shutil.which("strace") is None:
        return None
    few = _strace_counts(root, short, log_level, durable)
    many = _strace_counts(root, long, log_level, durable)
    per = {name: (many[name] - few[name]) / (long - short) for name in set(few) | set(many)}
    report = {name: per.pop(name, 0.0) for name in SYSCALLS}
    report["other"] = sum(v for v in per.values() if v > 0)
    return report


def deletion_cost(root: Path, deleted: int = 2000, settle_s: float = 2.0) -> dict[str, float]:
    """New-file cost before and after ``deleted`` files were removed next to it.

    The kernel compares deletion times in whole seconds, hence the pause before measuring.
    """
    folder = Path(tempfile.mkdtemp(prefix=".deletion-probe-", dir=root))
    before = create_files(folder, 300, "before")
    create_files(folder, deleted, "gone")
    for index in range(deleted):
        os.unlink(folder / f"gone{index}")
    time.sleep(settle_s)
    after = create_files(folder, 300, "after")
    return {"deleted": deleted, "before_us": before, "after_us": after}


def markdown(results: dict[str, Any]) -> str:
    split, shares, calls = results["cpu"], results["profile"], results["syscalls"]
    probe = results["deletion"]
    durable = results["durable"]
    # The profile covers this process only: for a durable campaign, nearly all the loop.
    profiled_ms = split["loop_thread_ms"] if durable else split["cpu_ms"]
    writes = "durable writes in writer processes" if durable else "non-durable writes"
    lines = [
        f"Generated by `bench/profile_episode.py --episodes {results['episodes']}"
        f"{' --durable' if durable else ''}` on "
        f"{results['date']} ({results['machine']['cpus']} cores, Python "
        f"{results['machine']['python']}, load average {results['load']:.1f} at the start); "
        f"mock campaign, {writes}, 4 episode workers, log level {results['log_level']} "
        "(stdout to /dev/null, the run's campaign.log on disk).",
        "",
        "| measure | per episode |",
        "|---|---|",
        f"| CPU, all threads{' and writer processes' if durable else ''} (user + system) | "
        f"{split['cpu_ms']:.3f} ms ({split['user_ms']:.3f} + {split['sys_ms']:.3f}) |",
        f"| CPU of the event-loop thread | {split['loop_thread_ms']:.3f} ms |",
        (
            "| CPU of the writer processes (the writes and the kernel's file work) | "
            if durable
            else "| CPU of the worker threads (disk writes, thread hops) | "
        )
        + f"{split['cpu_ms'] - split['loop_thread_ms']:.3f} ms |",
        f"| wall clock | {1000 / split['episodes_per_s']:.3f} ms "
        f"({split['episodes_per_s']:.0f} episodes/s) |",
        f"| new inodes (the folder and its files) | {split['inodes_per_episode']:.1f} |",
        f"| kernel CPU to create one file in the data dir at that time | "
        f"{results['new_file_us']:.0f} µs |",
        f"| the same right after {probe['deleted']} files nearby were deleted | "
        f"{probe['after_us']:.0f} µs (was {probe['before_us']:.0f}) |",
        "",
        "CPU time under cProfile (every thread"
        + (" of the campaign's process, not its writer processes" if durable else "")
        + ", each timed by its own CPU clock; the profiler inflates small Python calls, so read "
        "the shares, and the ms as shares of the unprofiled CPU of "
        + ("the event-loop thread" if durable else "all threads")
        + " above):",
        "",
        "| part | share | ≈ ms per episode |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {share:.1%} | {share * profiled_ms:.3f} |" for name, share in shares.items()
    ]
    lines.append("")
    if calls is None:
        lines.append("System calls: not counted (strace is not installed).")
    else:
        lines += [
            f"System calls per episode (`strace -f -c`, {results['strace'][1]} minus "
            f"{results['strace'][0]} episodes):",
            "",
            "| " + " | ".join(calls) + " |",
            "|" + "---|" * len(calls),
            "| " + " | ".join(f"{v:.1f}" for v in calls.values()) + " |",
        ]
    return "\n".join(lines)


def write_doc(text: str, durable: bool) -> None:
    begin, end_marker = (BEGIN_DURABLE, END_DURABLE) if durable else (BEGIN, END)
    doc = DOC.read_text()
    start, end = doc.index(begin) + len(begin), doc.index(end_marker)
    DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--log-level", default="warning", help="info: every episode logs a line")
    parser.add_argument(
        "--durable", action="store_true", help="durable writes (writer processes), as make bench"
    )
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging(args.log_level, stream=open(os.devnull, "wb"))  # noqa: SIM115
    if args.child is not None:  # one campaign under strace
        asyncio.run(measure_in_process(args.child, args.episodes, WORKERS, durable=args.durable))
        return
    # Both strace campaigns must write the same way: a durable one below the threshold would
    # write in threads, the longer one in writer processes.
    short = max(args.episodes // 5, WRITER_PROCESSES_FROM if args.durable else 1)
    if args.episodes <= short:
        parser.error(f"--episodes={args.episodes} must be above {short} here")
    load = os.getloadavg()[0]
    with quiet_data_dir() as (root, new_file_us):
        results: dict[str, Any] = {
            "episodes": args.episodes,
            "durable": args.durable,
            "log_level": args.log_level,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": machine(),
            "load": load,
            "new_file_us": new_file_us,
            "cpu": cpu_split(root, args.episodes, args.durable),
            "profile": profiled(root, args.episodes, args.durable),
            "strace": [short, args.episodes],
        }
        results["syscalls"] = syscalls(root, short, args.episodes, args.log_level, args.durable)
        results["deletion"] = deletion_cost(root)
    text = markdown(results)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "profile_episode_durable" if args.durable else "profile_episode"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    if args.write_doc:
        write_doc(text, args.durable)
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
