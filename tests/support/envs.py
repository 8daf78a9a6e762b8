"""Tiny registered envs whose right answer is known in closed form."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

CONSTANT_ENV_ID = "ilcore_rl_test/ConstantReward-v0"


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
    """Register :class:`ConstantRewardEnv` (once per process) and return its id."""
    if CONSTANT_ENV_ID not in gym.registry:
        gym.register(CONSTANT_ENV_ID, entry_point=ConstantRewardEnv, max_episode_steps=max_steps)
    return CONSTANT_ENV_ID
