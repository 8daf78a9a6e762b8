"""Small shared pieces for the RL tests: a weak CartPole BC policy and a constant-reward env."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from ilcore.algos.bc import BCConfig, train_bc
from ilcore.policies import Policy
from tests.ilcore.policies.demo_data import Transitions, cartpole_pd_action, rollout_demos

CONSTANT_ENV_ID = "ilcore_rl_test/ConstantReward-v0"


def weak_cartpole_demo(steps: int = 40) -> Transitions:
    """The first ``steps`` steps of ONE expert episode: too little to clone a balancing policy."""
    d = rollout_demos("CartPole-v1", cartpole_pd_action, episodes=1, seed=0, valid_episodes=0)
    keep = slice(0, steps)
    return dataclasses.replace(d, obs=d.obs[keep], actions=d.actions[keep], weights=d.weights[keep],
                               episode=d.episode[keep], train_mask=d.train_mask[keep], valid_mask=d.valid_mask[keep])


def weak_cartpole_policy(demo: Transitions, seed: int = 0) -> Policy:
    cfg = BCConfig(epochs=20, hidden=(64, 64), seed=seed, valid_fraction=0.0, patience=None)
    return train_bc(demo, cfg, progress=False).policy


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, a constant observation, never terminates (a TimeLimit truncates it).

    With discount gamma and timeouts bootstrapped, the true value of the state is 1 / (1 - gamma)
    everywhere; treating the timeout as a termination would pull it well below.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 1.0, False, False, {}


def register_constant_env(max_steps: int = 20) -> str:
    if CONSTANT_ENV_ID not in gym.registry:
        gym.register(CONSTANT_ENV_ID, entry_point=ConstantRewardEnv, max_episode_steps=max_steps)
    return CONSTANT_ENV_ID
