"""Demonstrations for the learning tests, built without the data layer.

``Transitions`` has the fields of ``ilcore.data.TransitionData`` that BC reads, so the policy,
BC, RL and eval tests do not depend on the recording format. The learning-from-observation tests
get observation-only expert demos and a synthetic video.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np

from ilcore.algos.bc import BCConfig, train_bc
from ilcore.algos.lfo.bco import ObservationDemos
from ilcore.experts import expert_rollouts
from ilcore.policies import Policy


@dataclasses.dataclass
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


def make_rollout_demos(env_id: str, policy_fn, episodes: int, seed: int, valid_episodes: int = 1) -> Transitions:
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


def make_pendulum_demos(n: int, seed: int, episodes: int = 10) -> Transitions:
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


def make_weak_cartpole_demos(steps: int = 40) -> Transitions:
    """The first ``steps`` steps of ONE expert episode: too little to clone a balancing policy."""
    d = make_rollout_demos("CartPole-v1", cartpole_pd_action, episodes=1, seed=0, valid_episodes=0)
    keep = slice(0, steps)
    return dataclasses.replace(d, obs=d.obs[keep], actions=d.actions[keep], weights=d.weights[keep],
                               episode=d.episode[keep], train_mask=d.train_mask[keep], valid_mask=d.valid_mask[keep])


def make_weak_cartpole_policy(demo: Transitions, seed: int = 0) -> Policy:
    """A BC policy cloned from :func:`make_weak_cartpole_demos`: it acts, but does not balance."""
    cfg = BCConfig(epochs=20, hidden=(64, 64), seed=seed, valid_fraction=0.0, patience=None)
    return train_bc(demo, cfg, progress=False).policy


def make_expert_sequences(env_id: str, episodes: int, seed: int = 1000) -> tuple[gym.Space, list[np.ndarray], list[np.ndarray]]:
    """(observation space, per-episode observations (T+1, D), per-episode actions (T, ...))."""
    return expert_rollouts(env_id, episodes, seed=seed)


def make_expert_demos(env_id: str, episodes: int, seed: int = 1000) -> ObservationDemos:
    """Observation-only demos of the scripted expert (true actions kept for checking inferred ones)."""
    space, seqs, acts = make_expert_sequences(env_id, episodes, seed)
    return ObservationDemos.from_sequences(space, seqs, acts)


def make_moving_square_video(rng: np.random.Generator, size: int = 16) -> np.ndarray:
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
