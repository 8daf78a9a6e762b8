"""BCO with image observations: a grid world seen only through 16x16 rendered frames."""

import gymnasium as gym
import numpy as np
import pytest

from ilcore import spaces as ispaces
from ilcore.algos.bc import BCConfig
from ilcore.algos.lfo.bco import BCOConfig, ObservationDemos, run_bco
from ilcore.envs.views import PixelObservation

MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right (row, column)


class _GridWorld(gym.Env):
    """An agent (red cell) walks to a goal (green cell) on a ``cells`` x ``cells`` grid.

    Each action moves one cell (clipped at the walls), so the action shows in the pair of frames
    (s, s'), which is what an inverse dynamics model needs. The state is (agent row, column, goal
    row, column); the learner only sees the rendered frame (``PixelObservation``).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, cells: int = 8, cell_px: int = 8, horizon: int = 30) -> None:
        self.cells, self.cell_px, self.horizon = cells, cell_px, horizon
        self.render_mode = "rgb_array"
        self.observation_space = gym.spaces.Box(0, cells - 1, (4,), np.int64)
        self.action_space = gym.spaces.Discrete(4)

    def _state(self) -> np.ndarray:
        return np.concatenate([self.agent, self.goal])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.agent = self.np_random.integers(0, self.cells, 2)
        self.goal = self.np_random.integers(0, self.cells, 2)
        while (self.goal == self.agent).all():
            self.goal = self.np_random.integers(0, self.cells, 2)
        self.t = 0
        return self._state(), {}

    def step(self, action):
        self.agent = np.clip(self.agent + MOVES[int(action)], 0, self.cells - 1)
        self.t += 1
        reached = bool((self.agent == self.goal).all())
        return self._state(), float(reached), reached, self.t >= self.horizon, {}

    def render(self) -> np.ndarray:
        px = self.cell_px
        frame = np.full((self.cells * px, self.cells * px, 3), 30, np.uint8)
        for (row, col), colour in ((self.goal, (40, 200, 60)), (self.agent, (230, 50, 50))):
            frame[row * px:(row + 1) * px, col * px:(col + 1) * px] = colour
        return frame


def _pixel_grid() -> PixelObservation:
    return PixelObservation(_GridWorld(), size=(16, 16))  # 64x64 render averaged down: 2x2 pixels per cell


def _walk_to_goal(grid: _GridWorld) -> int:
    """The demonstrator: close the row gap, then the column gap (it never walks into a wall)."""
    gap = grid.goal - grid.agent
    if gap[0] != 0:
        return 0 if gap[0] < 0 else 1
    return 2 if gap[1] < 0 else 3


def _image_demos(episodes: int, seed: int = 1000) -> ObservationDemos:
    env = _pixel_grid()
    sequences, actions = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        frames, taken = [obs], []
        while True:
            action = _walk_to_goal(env.unwrapped)
            obs, _, terminated, truncated, _ = env.step(action)
            frames.append(obs)
            taken.append(action)
            if terminated or truncated:
                break
        sequences.append(np.stack(frames))
        actions.append(np.asarray(taken))
    return ObservationDemos.from_sequences(env.observation_space, sequences, actions)


@pytest.mark.slow
def test_bco_labels_image_demos_far_above_chance():
    demos = _image_demos(20)
    assert ispaces.is_image(demos.observation_space) and demos.obs.shape[1:] == (16, 16, 3)
    majority = np.bincount(demos.true_actions, minlength=4).max() / len(demos)  # 0.38 here; uniform: 0.25
    # No early stopping for the IDM: with one CNN per frame its validation loss sits at ln(4)
    # (chance) for several epochs before it finds the agent's displacement, and patience 5
    # stops it there (seen here: 38% = always the majority action).
    config = BCOConfig(alpha=0.0, pre_demo_steps=2000, seed=0,
                       idm=BCConfig(epochs=30, batch_size=64, hidden=(64,), patience=None),
                       bc=BCConfig(epochs=10, batch_size=64, hidden=(64,), patience=None))
    result = run_bco(demos, "grid", config, env=_pixel_grid())
    first = result.iterations[0]
    assert first.idm_demo is not None
    assert first.idm_demo.accuracy > max(0.8, 2 * majority), (first.idm_demo, majority)
    assert first.idm_heldout is not None and first.idm_heldout.accuracy > 0.7  # random play, wall bumps included
    assert result.inferred_actions.shape == demos.true_actions.shape
    # The cloned policy acts on frames.
    assert ispaces.is_image(result.policy.observation_space)
    obs, _ = _pixel_grid().reset(seed=7)
    assert result.policy.act(obs) in range(4)


def test_bco_alpha_rolls_an_image_policy_out():
    demos = _image_demos(2)
    tiny = BCConfig(epochs=1, batch_size=32, hidden=(8,), patience=None)
    config = BCOConfig(alpha=0.5, pre_demo_steps=60, iterations=1, rollout_epsilon=0.2, idm=tiny, bc=tiny)
    result = run_bco(demos, "grid", config, env=_pixel_grid())
    assert [it.env_steps for it in result.iterations] == [60, 90]
    assert result.inferred_actions.shape == (len(demos),)
