"""examples/train_ppo.py: PPO trained for a small budget beats the static ±5 % range on
held-out seeds (paired 95 % interval above zero). Needs the rl extra (make test-extras)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("stable_baselines3", reason="the rl extra is not installed (make test-extras)")
pytest.importorskip("torch", reason="the rl extra is not installed (make test-extras)")

pytestmark = pytest.mark.extras

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_ppo.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_ppo_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ppo_beats_the_static_5pct_range_on_held_out_seeds() -> None:
    example = _load()
    run = example.train_and_compare(algo="ppo", timesteps=20_000, seed=0, eval_episodes=200)
    diff = run.comparison.difference
    assert diff.low is not None and diff.low > 0, run.comparison.summary()
    # Held out: evaluation seeds are the ones compare_to_static was given, not training's.
    assert run.comparison.seeds[0] == 1_000_000


def test_untrained_policy_does_not_beat_it() -> None:
    """The comparison can fail: a model that has not learned (no training steps) is not
    better than the baseline."""
    example = _load()
    run = example.train_and_compare(algo="ppo", timesteps=0, seed=0, eval_episodes=100)
    diff = run.comparison.difference
    assert not (diff.low is not None and diff.low > 0), run.comparison.summary()
