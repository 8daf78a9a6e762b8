"""Small seeded fixtures for the LfO tests: expert demos and a synthetic moving-square video."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ilcore.algos.lfo.bco import ObservationDemos
from ilcore.experts import expert_rollouts


def expert_sequences(env_id: str, episodes: int, seed: int = 1000) -> tuple[gym.Space, list[np.ndarray], list[np.ndarray]]:
    """(observation space, per-episode observations (T+1, D), per-episode actions (T, ...))."""
    return expert_rollouts(env_id, episodes, seed=seed)


def expert_demos(env_id: str, episodes: int, seed: int = 1000) -> ObservationDemos:
    space, seqs, acts = expert_sequences(env_id, episodes, seed)
    return ObservationDemos.from_sequences(space, seqs, acts)


def moving_square_video(rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """One episode (1, T, size, size, 3) uint8: a white square crossing the frame left to right
    with an episode-specific speed profile, over a noisy background of an episode-specific
    colour (a distractor that a time-contrastive embedding must learn to ignore)."""
    t_len = int(rng.integers(40, 61))
    warp = rng.uniform(0.7, 1.4)
    background = rng.integers(0, 120, 3)
    row = int(rng.integers(2, size - 5))
    frames = np.empty((t_len, size, size, 3), np.uint8)
    for t in range(t_len):
        f = np.clip(background + rng.normal(0, 25, (size, size, 3)), 0, 255)
        col = int(round((t / (t_len - 1)) ** warp * (size - 3)))
        f[row:row + 3, col:col + 3] = 255
        frames[t] = f
    return frames[None]
