"""Recorded sessions for tests.

Synthetic episodes whose every value follows from (seed, step), so a test can check any episode
read back from disk without keeping a copy; and an observation-only session of a scripted expert
(what a watch-only demo records), for the learning-from-observation commands.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ilcore.data import SessionWriter
from ilcore.experts import expert_rollouts
from ilcore.types import Actor

OBS_SPACE = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT_SPACE = spaces.Discrete(3)
ENV_ID = "Synthetic-v0"


def episode_length(seed: int) -> int:
    return 5 + seed % 23


def obs_at(seed: int, t: int) -> np.ndarray:
    return np.array([seed, t, seed * 0.5 + t], dtype=np.float32)


def action_at(seed: int, t: int) -> int:
    return (seed + t) % 3


def label_at(seed: int, t: int) -> int:
    return (seed + 2 * t) % 3


def make_writer(path: Path, **kw) -> SessionWriter:
    return SessionWriter(path, env_id=ENV_ID, observation_space=OBS_SPACE, action_space=ACT_SPACE, **kw)


def record_episode(writer: SessionWriter, seed: int, *, finish: bool = True, steps: int | None = None,
           step_hook=None):
    """Record the synthetic episode ``seed``: every step labelled (demo), terminated at the end."""
    n = episode_length(seed) if steps is None else steps
    rec = writer.begin_episode(obs_at(seed, 0), seed=seed, attrs={"seed_again": seed})
    for t in range(n):
        rec.label(t, label_at(seed, t), source="scripted", reason="demo")
        rec.step(action_at(seed, t), Actor.SCRIPTED, float(t), t == n - 1, False, obs_at(seed, t + 1),
                 info={"t": t, "skip": "text"})
        if step_hook is not None:
            step_hook(t)
    if finish:
        return rec.finish()
    return rec


def make_session(path: Path, seeds) -> Path:
    with make_writer(path) as w:
        for s in seeds:
            record_episode(w, s)
    return path


def assert_episode(ep, *, allow_incomplete: bool = True) -> None:
    """Assert an Episode read back matches its synthetic definition (a prefix if incomplete)."""
    seed = ep.meta.seed
    incomplete = ep.meta.attrs.get("incomplete", False)
    n = ep.length
    if incomplete:
        assert allow_incomplete
        assert n <= episode_length(seed)
        assert not ep.terminated and not ep.truncated
    else:
        assert n == episode_length(seed)
        assert ep.terminated and not ep.truncated
    assert ep.meta.attrs["seed_again"] == seed
    np.testing.assert_array_equal(ep.observations, np.stack([obs_at(seed, t) for t in range(n + 1)]))
    np.testing.assert_array_equal(ep.actions, [action_at(seed, t) for t in range(n)])
    np.testing.assert_array_equal(ep.rewards, np.arange(n, dtype=np.float64))
    np.testing.assert_array_equal(ep.actors, np.full(n, int(Actor.SCRIPTED)))
    np.testing.assert_array_equal(ep.infos["t"], np.arange(n))
    assert "skip" not in ep.infos
    eff = ep.effective_labels()
    assert set(eff) >= set(range(n))
    for t in range(n):
        assert int(eff[t].action) == label_at(seed, t)


def make_observation_only_recording(path: Path, env_id: str, episodes: int, seed: int = 1000) -> Path:
    """An observation-only session (no actions) of the scripted expert, as a watch-only demo would be."""
    space, seqs, _ = expert_rollouts(env_id, episodes, seed=seed)
    action_space = gym.make(env_id).action_space
    with SessionWriter(path, env_id=env_id, observation_space=space, action_space=action_space) as writer:
        for seq in seqs:
            rec = writer.begin_episode(seq[0])
            for t in range(1, len(seq)):
                rec.observe(seq[t], terminated=t == len(seq) - 1)
            rec.finish()
    return path
