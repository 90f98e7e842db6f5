"""``clmmd export --format minari``: the runs' episodes as a Minari dataset (``rl`` extra).

Every executed episode (result.json ``success``) becomes one Minari episode of one step of
``clmmd/UniswapV3LP-v0`` played with a single decision over the whole horizon, which is what
an episode of the agent is: open one range, hold it, close it.

* ``observations`` (2 × 20 ``float32``): the environment's observation
  (:mod:`clmmd.service.rl.observation`, the same encoder) at the start — the market inputs
  the simulator used, the regime key, the deployed size and gas, no position yet — and at the
  end of the horizon: the range open, the end price, the time in range and the fees.
* ``actions`` (1): ``1 + i`` for the agent's arm ``DEFAULT_WIDTHS[i]`` (0 would be "stay out").
* ``rewards`` (1): reward.json ``total``, in percent of the deployed size.
* ``terminations`` ``[True]``, ``truncations`` ``[False]``.
* ``infos``: the environment's keys at reset and at the end: ``pnl_usd``, ``fees_usd``,
  ``gas_usd``, ``value_usd``, ``time_in_range_pct``, ``rebalances`` (0).

Episodes are in the JSONL export's order (start time, run, episode id); the dataset's
metadata ``clmmd_episodes`` lists ``run_id/episode_id`` per Minari episode id. Failed and
skipped episodes (nothing executed, no outcome to learn from), episodes whose arm is not one
of the environment's widths and unreadable ones are left out, each with its reason.

When every exported episode has the same pool, horizon and size, the dataset records the
environment spec (``dataset.recover_environment()`` gives ``clmmd/UniswapV3LP-v0`` with
``decision_minutes`` = the horizon); the recovered environment draws synthetic markets, not
the artifacts' own. Minari writes under ``$MINARI_DATASETS_PATH`` (default
``~/.minari/datasets``) or the given root; an existing dataset id is refused, never replaced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from clmmd.agent.policy import DEFAULT_WIDTHS
from clmmd.service.analysis.export import NotExported, left_out, load_runs, run_layouts
from clmmd.service.analysis.export_trajectory import PlacedEpisode
from clmmd.service.rl import observation as obs

log = structlog.get_logger(__name__)

DEFAULT_DATASET_ID = "clmmd/uniswapv3lp-artifacts-v0"
_ENV_ID = "clmmd/UniswapV3LP-v0"
_INFO_KEYS = ("pnl_usd", "fees_usd", "gas_usd", "value_usd", "time_in_range_pct", "rebalances")


@dataclass(frozen=True)
class MinariEpisode:
    """One artifact episode as the arrays of a Minari episode."""

    run_id: str
    episode_id: str
    observations: NDArray[np.float32]
    action: int
    reward: float
    infos: dict[str, list[float]]
    env_kwargs: tuple[tuple[str, Any], ...]


@dataclass
class MinariExportReport:
    """What the export wrote and what it left out."""

    dataset_id: str
    path: Path
    runs: list[str]
    episodes: int = 0
    not_exported: list[NotExported] = field(default_factory=list)

    def summary_line(self) -> str:
        return (
            f"exported {self.episodes} episodes from {len(self.runs)} run(s) as Minari dataset "
            f"{self.dataset_id} -> {self.path}; {len(self.not_exported)} not exported"
        )


class NotConvertible(Exception):
    """An episode that has no Minari form (the message says why)."""


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotConvertible(f"{name} is missing")
    return float(value)


def to_minari_episode(placed: PlacedEpisode) -> MinariEpisode:
    """The Minari form of one exported trajectory (pure); :class:`NotConvertible` if none."""
    t = placed.trajectory
    outcome, action, reward = t["outcome"], t["action"], t["reward"]
    if outcome["status"] != "success" or reward is None:
        raise NotConvertible(f"status {outcome['status']}: nothing executed to learn from")
    width = action.get("width_ticks")
    if width not in DEFAULT_WIDTHS:
        raise NotConvertible(f"width_ticks {width!r} is not one of the arms {DEFAULT_WIDTHS}")
    inputs = t["observation"]["market_inputs"] or {}
    size = _number(outcome["size_usd_applied"], "size_usd_applied")
    if size <= 0:
        raise NotConvertible(f"size_usd_applied {size} is not positive")
    start = _number(outcome["start_price_usd"], "start_price_usd")
    end = _number(outcome["end_price_usd"], "end_price_usd")
    fees = _number(outcome["fees_usd"], "fees_usd")
    gas = _number(outcome["gas_cost_usd"], "gas_cost_usd")
    pnl = _number(outcome["pnl_usd"], "pnl_usd")
    in_range_pct = _number(outcome["time_in_range_pct"], "time_in_range_pct")
    static = obs.clip_static(
        obs.static_features(
            volatility_daily=_number(inputs.get("volatility_daily"), "volatility_daily"),
            volume_usd_per_day=_number(inputs.get("volume_usd_per_day"), "volume_usd_per_day"),
            active_liquidity_usd=_number(
                inputs.get("active_liquidity_usd"), "active_liquidity_usd"
            ),
            gas_cost_usd=gas,
            size_usd_applied=size,
            fee_pips=int(_number(action.get("fee_pips"), "fee_pips")),
            regime=obs.regime_from_key(t["observation"]["regime_key"]),
            risk_scalar=_number(outcome["risk_scalar_applied"], "risk_scalar_applied"),
        )
    )
    bounds = (
        _number(action.get("price_lower_usd"), "price_lower_usd"),
        _number(action.get("price_upper_usd"), "price_upper_usd"),
    )
    first = obs.encode(
        static,
        price_usd=start,
        start_price_usd=start,
        range_usd=None,
        time_in_range=0.0,
        fees_pct=0.0,
        progress=0.0,
    )
    last = obs.encode(
        static,
        price_usd=end,
        start_price_usd=start,
        range_usd=(min(bounds), max(bounds)),
        time_in_range=in_range_pct / 100.0,
        fees_pct=100.0 * fees / size,
        progress=1.0,
    )
    at_end = (pnl, fees, gas, size + pnl - fees + gas, in_range_pct, 0.0)
    horizon = _number(action.get("horizon_hours"), "horizon_hours")
    return MinariEpisode(
        run_id=t["run_id"],
        episode_id=t["episode_id"],
        observations=np.stack([first, last]),
        action=1 + DEFAULT_WIDTHS.index(width),
        reward=float(reward["total"]),
        infos={
            k: [start_value, end_value]
            for k, start_value, end_value in zip(
                _INFO_KEYS, (0.0, 0.0, 0.0, size, 0.0, 0.0), at_end, strict=True
            )
        },
        env_kwargs=(
            ("pool", str(action.get("pool_address"))),
            ("size_usd", _number(action.get("size_usd"), "size_usd")),
            ("horizon_hours", horizon),
            ("decision_minutes", horizon * 60.0),
        ),
    )


@contextlib.contextmanager
def _datasets_root(root: Path | None) -> Iterator[Path]:
    """Point Minari at ``root`` for the duration (it reads the variable on every call)."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    if root is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        from minari.storage.datasets_root_dir import get_dataset_path

        yield Path(get_dataset_path())
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _env_spec(episodes: list[MinariEpisode]) -> Any:
    """The environment these episodes are one-decision episodes of (None when they differ in
    pool, horizon or size)."""
    import gymnasium as gym

    import clmmd.service.rl  # noqa: F401  (registers the ids)

    kwargs = {e.env_kwargs for e in episodes}
    if len(kwargs) != 1:
        return None
    return dataclasses.replace(gym.spec(_ENV_ID), kwargs=dict(kwargs.pop()))


def export_minari(
    data_dir: Path,
    run_ids: list[str] | None,
    *,
    dataset_id: str = DEFAULT_DATASET_ID,
    root: Path | None = None,
) -> MinariExportReport:
    """Write the runs' executed episodes as Minari dataset ``dataset_id`` (blocking).

    ``root`` is the Minari datasets folder (None: Minari's own default). ``ValueError`` for a
    malformed or existing dataset id or when no episode can be exported, ``LookupError`` for
    an unknown run. A dataset that fails half-way is removed.
    """
    import gymnasium as gym
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    parse_dataset_id(dataset_id)  # ValueError names a malformed id before anything is read
    layouts = run_layouts(data_dir, run_ids)
    report = MinariExportReport(
        dataset_id=dataset_id, path=Path(), runs=[layout.run_id for layout in layouts]
    )
    placed = load_runs(layouts, report.not_exported)
    episodes: list[MinariEpisode] = []
    for item in sorted(placed, key=lambda p: p.order):
        try:
            episodes.append(to_minari_episode(item))
        except NotConvertible as exc:
            t = item.trajectory
            left_out(report.not_exported, t["run_id"], t["episode_id"], str(exc))
    if not episodes:
        raise ValueError("no executed episode to export (see the episodes left out)")
    buffers = [
        EpisodeBuffer(
            id=index,
            observations=e.observations,
            actions=np.array([e.action], dtype=np.int64),
            rewards=[e.reward],
            terminations=[True],
            truncations=[False],
            infos={k: np.array(v) for k, v in e.infos.items()},
        )
        for index, e in enumerate(episodes)
    ]
    spec = _env_spec(episodes)
    with _datasets_root(root) as datasets_root:
        path = datasets_root / dataset_id
        if path.exists():
            raise ValueError(f"Minari dataset {dataset_id!r} already exists at {path}")
        try:
            with warnings.catch_warnings():
                # Minari nags publishers for author, e-mail, code link and evaluation env:
                # a local export has none of them to give.
                warnings.filterwarnings("ignore", category=UserWarning, module="minari")
                dataset = minari.create_dataset_from_buffers(
                    dataset_id,
                    buffers,
                    env=spec,
                    observation_space=gym.spaces.Box(obs.LOW, obs.HIGH, dtype=np.float32),
                    action_space=gym.spaces.Discrete(1 + len(DEFAULT_WIDTHS)),
                    algorithm_name="clmmd-agent",
                    description=(
                        "clmmd artifacts: one episode per executed LP position (open one range, "
                        "hold it for the horizon); see docs/export-format.md"
                    ),
                    data_format="hdf5",
                )
            dataset.storage.update_metadata(
                {"clmmd_episodes": [f"{e.run_id}/{e.episode_id}" for e in episodes]}
            )
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
    report.path = path
    report.episodes = len(episodes)
    log.info(
        "export_minari_done",
        dataset_id=dataset_id,
        path=str(path),
        episodes=report.episodes,
        not_exported=len(report.not_exported),
    )
    return report
