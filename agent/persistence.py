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
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import orjson
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clmmd.agent.policy import ArmStats
from clmmd.agent.state import MAX_COUNT, AgentState
from clmmd.artifacts.base.clock import Clock, utc_iso
from clmmd.artifacts.writer import move_aside as move_file_aside
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


class _ArmDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    n: int = Field(ge=1, le=MAX_COUNT)
    mean: float = Field(allow_inf_nan=False)
    m2: float = Field(ge=0, allow_inf_nan=False)


class StateDocument(BaseModel):
    """The state file's schema (format_version 1); parsing it is the only validation."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: Literal["clmmd-agent-state"]
    format_version: Literal[1]
    state_version: int = Field(ge=0, le=MAX_COUNT)
    agent_version: str | None = None
    updated_at: str | None = None
    # JSON keys are strings: the arm width as decimal digits.
    regimes: dict[str, dict[Annotated[str, Field(pattern=r"^[1-9][0-9]*$")], _ArmDocument]]

    @model_validator(mode="after")
    def _versions_cover_rewards(self) -> StateDocument:
        # Every update adds one observation and one version; fewer versions than observations
        # means the file was edited or mixed up, and its agent_version would lie.
        updates = sum(arm.n for arms in self.regimes.values() for arm in arms.values())
        if self.state_version < updates:
            raise ValueError(
                f"state_version {self.state_version} is below the {updates} rewards it holds"
            )
        return self


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


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"] if part != "[key]") or "document"
    return f"{field}: {str(err['msg']).removeprefix('Value error, ')} (got {err.get('input')!r})"


def state_from_json(document: object) -> AgentState:
    """Parse a state document; :class:`StateFormatError` names the first problem found."""
    if not isinstance(document, dict):
        raise StateFormatError(f"expected a JSON object, got {type(document).__name__}")
    try:
        parsed = StateDocument.model_validate(document)
    except ValidationError as exc:
        raise StateFormatError(_first_problem(exc)) from None
    arms = {
        regime: {
            int(width): ArmStats(n=arm.n, mean=arm.mean, m2=arm.m2) for width, arm in raw.items()
        }
        for regime, raw in parsed.regimes.items()
    }
    return AgentState(version=parsed.state_version, arms=arms)


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
    return move_file_aside(path, clock.now())


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
        """Write ``state`` to ``path`` atomically (blocking).

        The document is validated with the schema it is read with *before* it is written
        (:class:`StateFormatError`, nothing written): a file this process could write but not
        read back would make the next start discard the whole learned state.
        """
        document = state_to_json(state, utc_iso(self.clock.now()))
        try:
            StateDocument.model_validate(document)
        except ValidationError as exc:
            raise StateFormatError(f"refusing to save: {_first_problem(exc)}") from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
