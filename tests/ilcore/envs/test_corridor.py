"""The corridor env renders rgb_array frames, so the app can show it."""

import gymnasium as gym
import numpy as np
import pytest

from ilcore.envs.corridor import LEFT, CorridorEnv
from ilcore.errors import ConfigError
from ilcore.eval import make_env


def test_corridor_frames_show_the_agent_where_it_is():
    env = make_env("ilcore/Corridor-v0", {"half_width": 3, "horizon": 4}, render_mode="rgb_array")
    env.reset(seed=0)
    start = env.render()
    assert start.dtype == np.uint8 and start.ndim == 3 and start.shape[2] == 3
    env.step(LEFT)
    moved = env.render()
    assert start.shape == moved.shape and not np.array_equal(start, moved)
    # the agent's colour sits on the corridor cell at the start and one cell to the left after the step
    agent = np.array([250, 200, 40], np.uint8)
    cols = lambda f: sorted({int(x) // 24 for x in np.argwhere((f == agent).all(axis=2))[:, 1]})  # noqa: E731
    assert cols(start) == [3] and cols(moved) == [2]


def test_corridor_without_render_mode_draws_nothing_and_refuses_other_modes():
    env = gym.make("ilcore/Corridor-v0")
    env.reset(seed=0)
    assert env.unwrapped.render() is None
    with pytest.raises(ConfigError, match="rgb_array"):
        CorridorEnv(render_mode="human")
