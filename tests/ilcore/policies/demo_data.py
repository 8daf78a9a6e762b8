"""Small demonstration sets for the policy/BC/eval tests, built without the data layer.

``Transitions`` has the fields of ``ilcore.data.TransitionData`` that BC reads, so these tests
do not depend on the recording format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass
class Transitions:
    obs: Any
    actions: Any
    weights: np.ndarray
    episode: np.ndarray
    train_mask: np.ndarray
    valid_mask: np.ndarray
    observation_space: gym.Space
    action_space: gym.Space
    next_obs: Any = None

    def __len__(self) -> int:
        return len(self.weights)


def cartpole_pd_action(obs: np.ndarray) -> int:
    """A PD controller on pole angle and cart position that balances CartPole for 500 steps."""
    x, x_dot, theta, theta_dot = obs
    return int(theta + 0.5 * theta_dot + 0.02 * x + 0.1 * x_dot > 0)


def pendulum_pd_action(obs: np.ndarray) -> np.ndarray:
    """A saturating rule for Pendulum-like states: push toward upright, damp velocity."""
    cos_t, sin_t, theta_dot = obs
    theta = np.arctan2(sin_t, cos_t)
    return np.clip(np.array([-8.0 * theta - 1.5 * theta_dot], np.float32), -2.0, 2.0)


def rollout_demos(env_id: str, policy_fn, episodes: int, seed: int, valid_episodes: int = 1) -> Transitions:
    """Record ``episodes`` episodes of ``policy_fn``; the last ``valid_episodes`` go to validation."""
    env = gym.make(env_id)
    obs_l, act_l, ep_l = [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            a = policy_fn(obs)
            obs_l.append(obs)
            act_l.append(a)
            ep_l.append(ep)
            obs, _, term, trunc, _ = env.step(a)
            done = term or trunc
    episode = np.asarray(ep_l)
    valid = episode >= episodes - valid_episodes
    return Transitions(
        obs=np.asarray(obs_l, np.float32),
        actions=np.asarray(act_l),
        weights=np.ones(len(ep_l), np.float32),
        episode=episode,
        train_mask=~valid,
        valid_mask=valid,
        observation_space=env.observation_space,
        action_space=env.action_space,
    )


def pendulum_like_data(n: int, seed: int, episodes: int = 10) -> Transitions:
    """Random near-upright Pendulum states labelled by :func:`pendulum_pd_action` (no env needed)."""
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    # Near-upright states, where the PD rule is continuous (it jumps where theta wraps at +-pi)
    # yet saturates at the bounds for a good share of states.
    theta = rng.uniform(-1.0, 1.0, n)
    theta_dot = rng.uniform(-4, 4, n)
    obs = np.stack([np.cos(theta), np.sin(theta), theta_dot], 1).astype(np.float32)
    actions = np.stack([pendulum_pd_action(o) for o in obs])
    episode = np.arange(n) % episodes
    valid = episode == episodes - 1
    return Transitions(obs, actions, np.ones(n, np.float32), episode, ~valid, valid,
                       env.observation_space, env.action_space)
