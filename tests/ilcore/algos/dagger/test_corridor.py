import gymnasium as gym
import numpy as np

import ilcore.envs  # noqa: F401  (registers ilcore/Corridor-v0)
from ilcore.envs.corridor import LEFT, RIGHT, STAY, CorridorExpert, position_of


def test_corridor_expert_pays_nothing_and_leaving_costs_every_step_until_back():
    env = gym.make("ilcore/Corridor-v0", horizon=6, half_width=3)
    obs, _ = env.reset(seed=0)
    expert = CorridorExpert()
    rewards = []
    for action in (RIGHT, STAY, None, None, None, None):  # one mistake, a lazy step, then the expert
        obs, r, terminated, truncated, _ = env.step(expert.act(obs) if action is None else action)
        rewards.append(r)
    assert rewards == [-1.0, -1.0, 0.0, 0.0, 0.0, 0.0] and truncated and not terminated
    assert position_of(obs) == 0 and expert.act(np.eye(7, dtype=np.float32)[5]) == LEFT
