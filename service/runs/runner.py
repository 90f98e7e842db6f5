"""``EpisodeRunner``: one episode's steps, each leaving artifacts whatever fails.

Steps: intel snapshot → propose → execute → reward → result → learning gate → metadata.
The folder appears atomically with proposal.json (a placeholder proposal recording why when
the agent could not propose). Any exception in a step writes failure.json naming the step, and
metadata.json is always written last. Each write is one encoded batch applied off the event loop
(an :class:`IoLane` thread, a pool thread, or a durable campaign's writer processes); an episode
that ends without learning writes its outcome and last files at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import BaseModel

from clmmd.agent.learner import LearningDecision, decide_learning
from clmmd.agent.persistence import LearningAgent
from clmmd.agent.proposer import ProposalContext, propose
from clmmd.agent.regime import MarketView, classify
from clmmd.agent.reward import outcome_reward
from clmmd.agent.state import AgentState
from clmmd.artifacts.base.clock import Clock, utc_iso
from clmmd.artifacts.episode_write import EpisodeWrite, FolderNotMadeError
from clmmd.artifacts.layout import episode_id as make_episode_id
from clmmd.artifacts.models import EpisodeResult, LogLine, Proposal, Reward
from clmmd.artifacts.store import ArtifactStore
from clmmd.artifacts.summary import EpisodeRecord
from clmmd.env.base import (
    ClmmEnv,
    EnvHealth,
    ExecutionRequest,
    ExecutionSkipped,
    MarketInputs,
    PoolSpec,
    PoolValidationError,
)
from clmmd.service.runs import builders as build
from clmmd.service.runs.builders import STAGE_HINTS
from clmmd.service.runs.context import (
    AgentHandle,
    EpisodeSettings,
    IntelReader,
    IntelSnapshotView,
    derive_seed,
    execution_request,
    market_view,
)
from clmmd.service.runs.io_lane import IoLane
from clmmd.service.runs.writer_processes import WriterProcesses

__all__ = [
    "STAGE_HINTS",
    "AgentHandle",
    "EpisodeRunner",
    "EpisodeSettings",
    "IntelReader",
    "IntelSnapshotView",
    "derive_seed",
    "market_view",
]

log = structlog.get_logger(__name__)


class EpisodeRunner:
    """Runs episodes of one run. Collaborators are the small interfaces tests fake."""

    def __init__(
        self,
        *,
        settings: EpisodeSettings,
        store: ArtifactStore,
        env: ClmmEnv,
        intel: IntelReader,
        agent: LearningAgent,
        pool: PoolSpec,
        clock: Clock,
        proposer: Callable[[ProposalContext, AgentState], Proposal] = propose,
        io: IoLane | None = None,
        writers: WriterProcesses | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.env = env
        self.intel = intel
        self.agent = agent
        self.pool = pool
        self.clock = clock
        self.proposer = proposer
        # Non-durable writes are short CPU work: one lane thread takes them all (fewest thread
        # wake-ups and GIL hand-offs). Durable ones wait on fsync: they overlap in the default
        # thread pool (``io`` None), as many as episodes are in flight, or in ``writers``
        # (a durable campaign's writer processes), which then apply every batch of the
        # episodes: ``store.apply`` is not called in this process.
        self.io = io if io is not None else (None if store.durable else IoLane(name="episode-io"))
        self.writers = writers

    async def run(self, index: int, *, trigger_id: str | None = None) -> EpisodeRecord:
        """Run episode ``index`` (1-based) to an artifact folder; returns its summary record.
        ``trigger_id`` (the trigger that asked for it) is recorded in proposal.json.

        Raises only when not even the folder could be created (e.g. the disk is full).
        """
        return await _Episode(self, index, trigger_id).run_logged()

    async def start(
        self, index: int, *, trigger_id: str | None = None
    ) -> asyncio.Task[EpisodeRecord]:
        """Run episode ``index`` until its last files are on their way to the disk, and return
        the task that ends as :meth:`run` does, once they are written.

        With durable writes the last write of an episode (outcome, timings, metadata, and for a
        simulation its folder: up to eight fsyncs) needs nothing more of the event loop: the
        caller computes its next episode while it lands, and counts this one when the task
        ends. Cancelling this call before it returns cancels the episode too, so no task is
        left behind.
        """
        episode = _Episode(self, index, trigger_id, handed_off=True)
        task = asyncio.create_task(episode.run_logged(), name=f"episode-{episode.episode_id}")
        task.add_done_callback(episode.hand_off)  # ended early (e.g. lost): nothing to wait for
        assert episode.handed_off is not None
        try:
            await episode.handed_off
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait([task])
            raise
        return task


class _Episode:
    """State of one running episode (kept off the runner so episodes run concurrently)."""

    def __init__(
        self,
        runner: EpisodeRunner,
        index: int,
        trigger_id: str | None = None,
        *,
        handed_off: bool = False,
    ) -> None:
        self.r = runner
        self.trigger_id = trigger_id
        self.s = runner.settings
        self.episode_id = make_episode_id(index)
        self.seed = derive_seed(self.s.campaign_seed, index)
        self.started = runner.clock.now()
        self.t0 = runner.clock.monotonic()
        self.stages: dict[str, float] = {}
        self.snapshot: IntelSnapshotView | None = None
        self.view: MarketView | None = None  # the agent's view of the snapshot, built once
        self.proposal: Proposal | None = None
        self.learning = LearningDecision(False, "episode did not reach the learning step")
        self.health: EnvHealth | None = None
        self._logs: list[LogLine] = []
        #: Done once the episode's last write is under way: nothing but the disk is left
        #: (None: nobody waits for that, :meth:`EpisodeRunner.run`).
        self.handed_off: asyncio.Future[None] | None = (
            asyncio.get_running_loop().create_future() if handed_off else None
        )
        #: The proposal whose folder the episode's first write makes (same thread call).
        self._unmade: Proposal | None = None
        #: Why the folder could not be made: the episode is lost, nothing else is written.
        self._lost: BaseException | None = None

    def hand_off(self, *_: object) -> None:
        if self.handed_off is not None and not self.handed_off.done():
            self.handed_off.set_result(None)

    async def run_logged(self) -> EpisodeRecord:
        """:meth:`run` with the episode id on every log line it makes."""
        structlog.contextvars.bind_contextvars(episode_id=self.episode_id)
        try:
            return await self.run()
        finally:
            structlog.contextvars.unbind_contextvars("episode_id")

    def _submit(self, write: EpisodeWrite) -> asyncio.Future[None]:
        """Start applying one batch off the event loop; the future ends when it is written."""
        r = self.r
        if r.writers is not None:
            return r.writers.apply(write)  # a future already: no task to wrap it in
        if r.io is not None:
            return asyncio.ensure_future(r.io.run(r.store.apply, write))
        return asyncio.ensure_future(asyncio.to_thread(r.store.apply, write))

    async def _io(self, write: EpisodeWrite) -> None:
        """Apply one batch off the event loop (see :meth:`_landed`)."""
        await self._landed(self._submit(write))

    async def _landed(self, pending: asyncio.Future[None]) -> None:
        """Wait for a submitted batch. A folder that could not be made loses the episode
        (``_lost``): it has nowhere to record anything, not even its failure."""
        # Persistence is shielded: a cancelled episode (shutdown past the drain deadline) still
        # finishes the write it started before the cancellation propagates, so recovery never
        # races a half-done write (e.g. writing failure.json while result.json is landing).
        try:
            await asyncio.shield(pending)
        except FolderNotMadeError as exc:
            self._lost = exc.error
            raise exc.error from None
        except asyncio.CancelledError:
            await asyncio.wait([pending])
            if not pending.cancelled() and pending.exception() is not None:
                # Retrieved (else asyncio prints "Task exception was never retrieved" on
                # stderr); the cancellation wins, recovery completes the folder.
                log.warning("episode_write_failed_while_stopping", error=str(pending.exception()))
            raise

    def _log(self, event: str, **payload: Any) -> None:
        """Buffer a logs.jsonl line; it is appended with the episode's next write."""
        self._logs.append(LogLine(ts=utc_iso(self.r.clock.now()), event=event, payload=payload))

    async def _write(self, *artifacts: tuple[str, BaseModel], last: bool = False) -> None:
        if self._lost is not None:
            raise self._lost
        logs, self._logs = self._logs, []
        proposal, self._unmade = self._unmade, None
        pending = self._submit(
            self.r.store.episode_write(
                self.episode_id, proposal=proposal, logs=logs, artifacts=artifacts
            )
        )
        if last:
            self.hand_off()  # the write is under way: whoever waits for the hand-off goes on
        await self._landed(pending)

    def _mark(self, stage: str, t_start: float) -> None:
        self.stages[stage] = round((self.r.clock.monotonic() - t_start) * 1000.0, 3)

    async def run(self) -> EpisodeRecord:
        stage = "snapshot"
        t = self.r.clock.monotonic()
        try:
            self.snapshot = self.r.intel.snapshot(
                self.r.pool.address, self.r.pool.pair, self.s.lookback_hours
            )
            self._mark("snapshot", t)
            stage, t = "propose", self.r.clock.monotonic()
            view = self.view = market_view(self.snapshot)
            ctx = ProposalContext(
                run_id=self.s.run_id,
                episode_id=self.episode_id,
                seed=self.seed,
                pool=self.r.pool,
                view=view,
                size_usd=self.s.size_usd,
                horizon_hours=self.s.horizon_hours,
                risk_scalar_override=self.s.risk_scalar_override,
                risk_profile=self.s.risk_profile,
            )
            self.proposal = self.r.proposer(ctx, self.r.agent.state)
            if self.trigger_id is not None:
                self.proposal = self.proposal.model_copy(update={"trigger_id": self.trigger_id})
            self._mark("propose", t)
        except Exception as exc:
            placeholder = Proposal(
                run_id=self.s.run_id,
                episode_id=self.episode_id,
                proposed=False,
                reason=f"no proposal: {stage} failed: {type(exc).__name__}: {exc}",
                seed=self.seed,
                trigger_id=self.trigger_id,
            )
            await self._io(self.r.store.episode_write(self.episode_id, proposal=placeholder))
            return await self._fail(stage, exc)
        if self.r.store.durable and self.r.env.name == "mock":
            # A simulation has no effect outside this process: its folder is made by the
            # episode's first write, in the same thread call (one hop and one wait on the disk
            # instead of two). Real execution opens a position on chain: its folder must be on
            # disk first, so that after a crash recovery finds the position and settles it.
            # Without fsync the folder costs microseconds on the io lane: made at once.
            self._unmade = self.proposal
        else:
            await self._io(self.r.store.episode_write(self.episode_id, proposal=self.proposal))
        self._log(
            "proposed",
            regime_key=self.proposal.regime_key,
            width_ticks=self.proposal.action.width_ticks if self.proposal.action else None,
            tick_lower=self.proposal.tick_lower,
            tick_upper=self.proposal.tick_upper,
            hygiene=dict(self.snapshot.hygiene) if self.snapshot else None,
        )
        try:
            stage, t = "execute", self.r.clock.monotonic()
            self.health = await self.r.env.health()
            try:
                outcome = await self.r.env.execute(self._request())
            except PoolValidationError as exc:
                stage = "validate"
                raise exc
            except ExecutionSkipped as exc:
                self._mark("execute", t)
                return await self._skip(exc)
            self._mark("execute", t)
            self._log(
                "executed",
                pnl_usd=outcome.pnl_usd,
                fees_usd=outcome.fees_usd,
                risk_scalar_applied=outcome.risk_scalar_applied,
            )
            stage, t = "reward", self.r.clock.monotonic()
            reward = outcome_reward(outcome, self.s.reward_weights)
            self._mark("reward", t)
            stage = "write_result"
            result = build.success_result(outcome, self.r.env.name, self.stages)
            self._decide_learning(result)
            if self._learns():
                # The outcome must be on disk before the agent learns from it.
                t = self.r.clock.monotonic()
                await self._write(*_outcome_files(reward, result))
                self._mark("write_result", t)
        except Exception as exc:
            return await self._fail(stage, exc)
        if self._learns():
            await self._learn(reward)
            await self._finish()
        else:
            # Nothing happens between the outcome and the last files: one write (one thread
            # hop, one directory fsync) for all of them.
            try:
                await self._finish(*_outcome_files(reward, result))
            except Exception as exc:
                landed = await asyncio.to_thread(self.r.store.has, self.episode_id, "result.json")
                if landed:  # only timings/metadata failed: as a failed _finish always did
                    raise
                return await self._fail("write_result", exc)
        log.info(
            "episode_done",
            status=result.status,
            pnl_usd=round(result.pnl_usd, 4),
            reward=round(reward.total, 6),
            learning=self.learning.apply,
        )
        return EpisodeRecord(
            status=result.status,
            pnl_usd=result.pnl_usd,
            fees_usd=result.fees_usd,
            gas_cost_usd=result.gas_cost_usd,
            il_usd=result.il_usd,
            hodl_return_usd=result.hodl_return_usd,
            risk_scalar_applied=True,
            fresh_pct=self._fresh_pct(),
        )

    def _request(self) -> ExecutionRequest:
        assert self.proposal is not None
        market = self.snapshot.market_inputs() if self.snapshot else MarketInputs()
        return execution_request(
            self.s, self.proposal, pool=self.r.pool, seed=self.seed, market=market
        )

    def _fresh_pct(self) -> float | None:
        if self.snapshot is None:
            return None
        value = self.snapshot.hygiene.get("fresh_pct")
        return float(value) if isinstance(value, (int, float)) else None

    def _decide_learning(self, result: EpisodeResult) -> None:
        """The learning gates (pure): decided before the outcome is written."""
        t = self.r.clock.monotonic()
        regime_unknown = classify(self.view or market_view(None)).is_unknown
        self.learning = decide_learning(
            status=result.status,
            exec_mode=self.s.exec_mode,
            learn_from_mock=self.s.learn_from_mock,
            fresh_pct=self._fresh_pct() or 0.0,
            fresh_pct_floor=self.s.fresh_pct_floor,
            regime_unknown=regime_unknown,
        )
        self._mark("learn", t)
        if not self._learns():
            self._log("learning", applied=self.learning.apply, reason=self.learning.reason)

    def _learns(self) -> bool:
        proposal = self.proposal
        return bool(self.learning.apply and proposal and proposal.regime_key and proposal.action)

    async def _learn(self, reward: Reward) -> None:
        """Apply the update the gates allowed (``_learns()``); a failure is recorded, not fatal."""
        t = self.r.clock.monotonic()
        proposal = self.proposal
        assert proposal is not None and proposal.regime_key and proposal.action
        try:
            await self.r.agent.learn(proposal.regime_key, proposal.action.width_ticks, reward.total)
        except Exception as exc:
            self.learning = LearningDecision(False, f"learning update failed: {exc}")
        self._log("learning", applied=self.learning.apply, reason=self.learning.reason)
        self._mark("learn", t)

    async def _skip(self, exc: ExecutionSkipped) -> EpisodeRecord:
        """A live-risk gate refused: result.json says ``skipped`` and names the gate."""
        log.warning("episode_skipped", gate=exc.gate, reason=str(exc))
        result, reward = build.skipped_result(
            exc, self.r.env.name, self.stages, self.s.reward_weights
        )
        self._log("skipped", gate=exc.gate, reason=str(exc))
        self.learning = LearningDecision(False, f"gate: episode skipped ({exc.gate})")
        await self._finish(*_outcome_files(reward, result))
        return EpisodeRecord(status="skipped", fresh_pct=self._fresh_pct())

    async def _fail(self, stage: str, exc: BaseException) -> EpisodeRecord:
        if self._lost is not None:  # no folder: nothing to record the failure in
            raise self._lost
        log.error(
            "episode_failed",
            stage=stage,
            error_type=type(exc).__name__,
            error=str(exc),
            hint=build.STAGE_HINTS.get(stage),
        )
        failure = build.failure(stage, exc, self.r.clock.now())
        if failure.gas_paid_native:
            log.error(
                "episode_failed_after_spending",
                transactions=len(failure.transactions or ()),
                gas_paid_native=failure.gas_paid_native,
                hint="failure.json lists the transactions the episode paid gas for",
            )
        self.learning = LearningDecision(False, f"gate: episode failed at {stage}")
        try:
            self._log("failed", stage=stage, error_type=type(exc).__name__)
            await self._write(("failure.json", failure))
        except Exception as write_exc:  # the metadata below may still succeed
            log.error(
                "failure_artifact_write_failed",
                error=str(write_exc),
                hint="check disk space; the next start records this episode as interrupted",
            )
        await self._finish()
        return EpisodeRecord(status="failed", fresh_pct=self._fresh_pct())

    async def _finish(self, *first: tuple[str, BaseModel]) -> None:
        """Write ``first`` (the outcome, when nothing happened since), then timings.json and
        metadata.json: the last files of every episode."""
        metadata = build.metadata(
            run_id=self.s.run_id,
            episode_id=self.episode_id,
            agent_version=self.r.agent.state.agent_version,
            config_hash=self.s.config_hash,
            exec_mode=self.s.exec_mode,
            started=self.started,
            proposal=self.proposal,
            seed=self.seed,
            learning=self.learning,
            health=self.health,
            intel_extra=self.snapshot.as_metadata_extra() if self.snapshot else None,
        )
        timings = build.timings(
            self.stages, self.r.clock.monotonic() - self.t0, self.started, self.r.clock.now()
        )
        await self._write(*first, ("timings.json", timings), ("metadata.json", metadata), last=True)


def _outcome_files(reward: Reward, result: EpisodeResult) -> tuple[tuple[str, BaseModel], ...]:
    # reward.json first: a crash between the two leaves reward without result, which recovery
    # completes with failure.json; the reverse could never validate.
    return (("reward.json", reward), ("result.json", result))
