"""The agent's state on disk: one JSON file, replaced atomically after every learning update.

``PersistentAgent`` has the interface of ``service.episodes.AgentHandle`` (``.state`` and
``async learn(regime_key, width_ticks, reward)``) and saves each update before it becomes
visible. File format (``format_version`` 1), keys sorted, widths as strings (JSON keys)::

    {"format": "clmmd-agent-state", "format_version": 1, "state_version": 12,
     "agent_version": "clmmd-agent/0.1+s12", "updated_at": "2026-11-23T16:00:00Z",
     "regimes": {"gas=low|vol=mid|flow=clean": {"1000": {"n": 7, "mean": 0.12, "m2": 0.03}}}}

A file that cannot be read as this format is moved aside to ``<name>.corrupt-<UTC timestamp>``
(warning ``agent_state_corrupt`` with path, moved_to and reason) and the agent starts from its
prior: a bad file must never stop the daemon, and must never be silently overwritten either.

One process owns a state file: two processes learning into the same file would each replace
the other's updates (the file is rewritten whole, not merged).
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import os
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog

from clmmd.agent.policy import ArmStats
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import Clock, utc_iso
from clmmd.artifacts.writer import replace_json

log = structlog.get_logger(__name__)

FORMAT_NAME = "clmmd-agent-state"
FORMAT_VERSION = 1
#: Where the state lives under the data directory.
STATE_RELATIVE_PATH = Path("agent") / "state.json"


class LearningAgent(Protocol):
    """What the episode runner needs of an agent (``AgentHandle`` and ``PersistentAgent``)."""

    @property
    def state(self) -> AgentState: ...

    async def learn(self, regime_key: str, width_ticks: int, reward: float) -> AgentState: ...


class StateFormatError(ValueError):
    """The state file's content is not a valid state; the message says what is wrong."""


def default_state_path(data_dir: Path) -> Path:
    """``<data_dir>/agent/state.json``."""
    return data_dir / STATE_RELATIVE_PATH


def state_to_json(state: AgentState, updated_at: str) -> dict[str, Any]:
    """The JSON document for ``state`` (see the module docstring)."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "state_version": state.version,
        "agent_version": state.agent_version,
        "updated_at": updated_at,
        "regimes": {
            regime: {
                str(width): {"n": stats.n, "mean": stats.mean, "m2": stats.m2}
                for width, stats in sorted(arms.items())
            }
            for regime, arms in sorted(state.arms.items())
        },
    }


def _finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StateFormatError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _arm(raw: object, where: str) -> ArmStats:
    if not isinstance(raw, dict) or set(raw) != {"n", "mean", "m2"}:
        raise StateFormatError(f"{where} must be an object with exactly n, mean and m2")
    n = raw["n"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise StateFormatError(f"{where}.n must be an integer >= 1, got {n!r}")
    m2 = _finite(raw["m2"], f"{where}.m2")
    if m2 < 0:
        raise StateFormatError(f"{where}.m2 must be >= 0, got {m2!r}")
    return ArmStats(n=n, mean=_finite(raw["mean"], f"{where}.mean"), m2=m2)


def state_from_json(document: object) -> AgentState:
    """Parse a state document; :class:`StateFormatError` names the first problem found."""
    if not isinstance(document, dict):
        raise StateFormatError(f"expected a JSON object, got {type(document).__name__}")
    if document.get("format") != FORMAT_NAME:
        raise StateFormatError(f"format is {document.get('format')!r}, not {FORMAT_NAME!r}")
    if document.get("format_version") != FORMAT_VERSION:
        raise StateFormatError(
            f"unsupported format_version {document.get('format_version')!r} "
            f"(this build reads {FORMAT_VERSION})"
        )
    version = document.get("state_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise StateFormatError(f"state_version must be an integer >= 0, got {version!r}")
    regimes = document.get("regimes")
    if not isinstance(regimes, dict):
        raise StateFormatError("regimes must be an object")
    arms: dict[str, dict[int, ArmStats]] = {}
    for regime, raw_arms in regimes.items():
        if not isinstance(raw_arms, dict):
            raise StateFormatError(f"regimes[{regime!r}] must be an object")
        parsed: dict[int, ArmStats] = {}
        for width_text, raw in raw_arms.items():
            if not (isinstance(width_text, str) and width_text.isdigit() and int(width_text) > 0):
                raise StateFormatError(f"arm width {width_text!r} is not a positive integer")
            parsed[int(width_text)] = _arm(raw, f"regimes[{regime!r}][{width_text}]")
        arms[regime] = parsed
    updates = sum(stats.n for regime_arms in arms.values() for stats in regime_arms.values())
    # Every update adds one observation and one version; fewer versions than observations
    # means the file was edited or mixed up, and its agent_version would lie.
    if version < updates:
        raise StateFormatError(f"state_version {version} is below the {updates} rewards it holds")
    return AgentState(version=version, arms=arms)


def read_state(path: Path) -> AgentState | None:
    """The state saved at ``path``; ``None`` when there is no file (blocking).

    :class:`StateFormatError` when the file exists but is not a valid state.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateFormatError(f"not valid JSON: {exc}") from None
    return state_from_json(document)


def move_aside(path: Path, clock: Clock) -> Path:
    """Rename ``path`` to ``<name>.corrupt-<YYYYmmddTHHMMSSZ>`` (a free name); returns it."""
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{suffix}")
    os.rename(path, target)
    return target


#: Lock files this process holds (path → fd): ownership of a state file is per process.
_OWNED_LOCKS: dict[Path, int] = {}


class StateLockedError(RuntimeError):
    """Another live process owns the agent state file."""


class PersistentAgent:
    """The shared agent state, saved to ``path`` after every update.

    Updates are serialised by an ``asyncio.Lock`` and each is saved (in a worker thread) before
    ``state`` shows it, so N concurrent ``learn`` calls give version N with every reward counted,
    and the file never holds an older state than a reader has seen. A failed save raises and
    leaves ``state`` as it was (the runner then records the update as not applied).
    """

    def __init__(
        self,
        path: Path,
        clock: Clock,
        state: AgentState | None = None,
        *,
        durable: bool = True,
    ) -> None:
        self.path = path
        self.clock = clock
        self.durable = durable
        self._state = state or AgentState()
        self._lock = asyncio.Lock()
        self._owner_checked = False

    @property
    def state(self) -> AgentState:
        return self._state

    @classmethod
    def load(cls, path: Path, clock: Clock, *, durable: bool = True) -> PersistentAgent:
        """The agent saved at ``path`` (blocking; see :meth:`open` from async code).

        No file: a fresh agent (prior only). A corrupt or wrong-format file is moved aside
        with a warning and the agent starts from its prior. ``OSError`` when the file cannot
        be read or moved aside (nothing is overwritten then).
        """
        try:
            state = read_state(path)
        except StateFormatError as exc:
            moved_to = move_aside(path, clock)
            log.warning(
                "agent_state_corrupt",
                path=str(path),
                moved_to=str(moved_to),
                reason=str(exc),
                hint="the agent starts from its prior; inspect the moved file",
            )
            state = None
        agent = cls(path, clock, state, durable=durable)
        log.info(
            "agent_state_loaded",
            path=str(path),
            agent_version=agent.state.agent_version,
            regimes=len(agent.state.arms),
            fresh_start=state is None,
        )
        return agent

    @classmethod
    async def open(cls, path: Path, clock: Clock, *, durable: bool = True) -> PersistentAgent:
        """:meth:`load` in a worker thread, for async callers."""
        return await asyncio.to_thread(cls.load, path, clock, durable=durable)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def acquire_ownership(self) -> bool:
        """Make this process the one that learns into ``path`` (blocking; idempotent).

        An exclusive ``flock`` on ``<path>.lock``, held until the process exits: a second
        process (a one-shot campaign while the daemon runs) would otherwise overwrite the
        other's updates, since each save rewrites the whole file. Ownership is per process, so
        successive agents of one process (train, then evaluate) share it. Returns True the first
        time this object checks (the caller then reloads the file: someone may have learned
        since our load); raises :class:`StateLockedError` when another live process holds it.
        """
        if self._owner_checked:
            return False
        key = self.lock_path.resolve()
        if key not in _OWNED_LOCKS:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise StateLockedError(
                    f"agent state {self.path} is being learned into by another process "
                    f"(pid {holder}); learn in one process at a time (e.g. give a one-shot "
                    "campaign its own --data-dir)"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            _OWNED_LOCKS[key] = fd
        self._owner_checked = True
        return True

    def _own_and_refresh(self) -> None:
        if self.acquire_ownership():
            latest = read_state(self.path)
            if latest is not None and latest.version > self._state.version:
                self._state = latest

    def save_sync(self, state: AgentState) -> None:
        """Write ``state`` to ``path`` atomically (blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = state_to_json(state, utc_iso(self.clock.now()))
        replace_json(self.path, document, durable=self.durable)

    async def learn(self, regime_key: str, width_ticks: int, reward: float) -> AgentState:
        """Add ``reward`` to one arm, save, then publish the new state; returns it."""
        async with self._lock:
            await asyncio.to_thread(self._own_and_refresh)
            new = self._state.with_reward(regime_key, width_ticks, reward)
            # Shielded: if the caller is cancelled mid-save, the write still completes and the
            # in-memory state follows the file, so memory and disk never disagree.
            task = asyncio.ensure_future(asyncio.to_thread(self.save_sync, new))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                await asyncio.wait([task])
                if not task.cancelled() and task.exception() is None:
                    self._state = new
                raise
            self._state = new
            log.debug(
                "agent_state_saved",
                path=str(self.path),
                agent_version=new.agent_version,
                regime_key=regime_key,
                width_ticks=width_ticks,
            )
            return new
