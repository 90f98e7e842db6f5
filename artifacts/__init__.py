"""Artifact schemas, the atomic/immutable writer, run layout, summary, validation, recovery."""

from artifacts.layout import RunLayout, episode_id, list_runs, new_run_id, resolve_run
from artifacts.models import (
    EpisodeFailure,
    EpisodeMetadata,
    EpisodeResult,
    LogLine,
    MetadataExtra,
    MetricsSummary,
    Proposal,
    RangeAction,
    Reward,
    RewardComponents,
    RunInfo,
    Simulation,
    Timings,
)
from artifacts.recovery import RecoveryReport, recover_all, recover_run
from artifacts.store import ArtifactStore
from artifacts.summary import EpisodeRecord, summarize, summarize_folders
from artifacts.validate import Violation, validate_run
from artifacts.writer import ArtifactExistsError

__all__ = [
    "ArtifactExistsError",
    "ArtifactStore",
    "EpisodeFailure",
    "EpisodeMetadata",
    "EpisodeRecord",
    "EpisodeResult",
    "LogLine",
    "MetadataExtra",
    "MetricsSummary",
    "Proposal",
    "RangeAction",
    "RecoveryReport",
    "Reward",
    "RewardComponents",
    "RunInfo",
    "RunLayout",
    "Simulation",
    "Timings",
    "Violation",
    "episode_id",
    "list_runs",
    "new_run_id",
    "recover_all",
    "recover_run",
    "resolve_run",
    "summarize",
    "summarize_folders",
    "validate_run",
]
