"""Where a sweep's batches run: in this process, or as Ray tasks (the ``scale`` extra).

Both executors run the same task (:func:`sweep_grid.run_batch`) and return its results in
batch order, so what the head writes does not depend on which one ran them. Ray is imported
only by :class:`RayExecutor`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from clmmd.service.analysis.sweep_grid import BatchResult, SweepBatch, SweepContext, run_batch


@dataclass(frozen=True)
class ExecutionStats:
    """How a sweep's batches ran (not part of its results: timings differ run to run)."""

    executor: str
    workers: int
    tasks: int
    wall_s: float
    task_compute_s: float  # the sum of the tasks' own compute time (wall, in the task)
    task_cpu_s: float  # the sum of the tasks' CPU time (less than compute on a busy machine)
    setup_s: float = 0.0  # connecting to (or starting) the cluster
    head_cpu_s: float = 0.0  # this process's CPU time during the run (Ray's threads included)

    @property
    def overhead_per_task_ms(self) -> float:
        """Wall time not explained by compute spread evenly over the workers, per task."""
        ideal = self.task_compute_s / max(self.workers, 1)
        return max(0.0, self.wall_s - ideal) / max(self.tasks, 1) * 1000.0


class BatchExecutor(Protocol):
    name: str

    def workers(self) -> int: ...

    def run(
        self, context: SweepContext, batches: Sequence[SweepBatch]
    ) -> tuple[list[BatchResult], ExecutionStats]:
        """Every batch's result, in batch order."""
        ...


def timed_batch(context: SweepContext, batch: SweepBatch) -> tuple[BatchResult, float, float]:
    """:func:`run_batch`, its wall-clock and its CPU time in seconds (this thread's: a Ray
    worker's own threads are not the task's)."""
    _quiet_worker_logging()
    started, cpu_started = time.perf_counter(), time.thread_time()
    result = run_batch(context, batch)
    return result, time.perf_counter() - started, time.thread_time() - cpu_started


_LOGGING_SET = False


def _quiet_worker_logging() -> None:
    # The simulator logs a debug line per episode: in a worker process nobody reads it, and
    # at thousands of episodes a second it would cost more than the simulation.
    global _LOGGING_SET
    if not _LOGGING_SET:
        import structlog

        if not structlog.is_configured():
            from clmmd.service.logging import configure_logging

            configure_logging("warning")
        _LOGGING_SET = True


_CONTEXT: tuple[str, SweepContext] | None = None  # (object id, context): the last sweep's


def ray_task(shared: list[Any], batch: SweepBatch) -> tuple[BatchResult, float, float]:
    """:func:`timed_batch` in a Ray worker, with the sweep's context fetched once per worker
    (a worker runs several batches of a sweep; a replayed market is megabytes)."""
    import ray

    global _CONTEXT
    (ref,) = shared
    if _CONTEXT is None or _CONTEXT[0] != ref.hex():
        _CONTEXT = (ref.hex(), ray.get(ref))
    return timed_batch(_CONTEXT[1], batch)


class SerialExecutor:
    """Every batch in this process, one after the other."""

    name = "serial"

    def workers(self) -> int:
        return 1

    def run(
        self, context: SweepContext, batches: Sequence[SweepBatch]
    ) -> tuple[list[BatchResult], ExecutionStats]:
        started, cpu_started = time.perf_counter(), time.process_time()
        results = [run_batch(context, batch) for batch in batches]
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        return results, ExecutionStats("serial", 1, len(batches), wall, wall, cpu, 0.0, cpu)


class RayExecutor:
    """Batches as Ray tasks (one CPU each) on a local Ray (``address`` None: started here with
    ``num_cpus``, workers at normal priority) or an existing cluster (``address``, e.g.
    ``ray://head:10001`` or ``auto``). The cluster's nodes need clmmd installed at the same
    version."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.setup_s = 0.0
        self._started_here = False

    def _ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            started = time.perf_counter()
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus
                self._started_here = True
                # Ray runs its workers at niceness 15: on a busy machine they would then get
                # a fraction of what the same grid run serially (niceness 0) gets. A local
                # sweep is the job the user is waiting for; a user's own setting wins.
                os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(address=self.address, **kwargs)
            self.setup_s = time.perf_counter() - started
        return ray

    def workers(self) -> int:
        return int(self._ray().cluster_resources().get("CPU", 1))

    def run(
        self, context: SweepContext, batches: Sequence[SweepBatch]
    ) -> tuple[list[BatchResult], ExecutionStats]:
        ray = self._ray()
        task = ray.remote(num_cpus=1)(ray_task)
        started, cpu_started = time.perf_counter(), time.process_time()
        # The context crosses once: stored here, fetched and kept by each worker (the
        # reference travels inside a list so Ray hands it over unresolved).
        shared = [ray.put(context)]
        results = ray.get([task.remote(shared, batch) for batch in batches])
        wall, head_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        stats = ExecutionStats(
            "ray",
            self.workers(),
            len(batches),
            wall,
            sum(seconds for _, seconds, _ in results),
            sum(cpu for _, _, cpu in results),
            self.setup_s,
            head_cpu,
        )
        return [result for result, _, _ in results], stats

    def shutdown(self) -> None:
        """Stop the local Ray this executor started (a cluster given by address stays up)."""
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False
