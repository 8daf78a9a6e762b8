"""A corridor where leaving the expert's path is costly: the compounding-error textbook case.

The agent sits at an integer position in [-W, W]; the corridor is position 0. Each step it moves
left, stays or moves right (Discrete(3): 0, 1, 2) and pays cost 1 (reward -1) for every step it
ends away from 0. The observation is the one-hot position (2W + 1,), so knowing what to do at
one position says nothing about another: a learner that never saw off-corridor states has no
idea how to come back, which is what makes behavioural cloning's cost grow like T^2 while
DAgger's grows like T (Ross & Bagnell 2010; Ross et al. 2011).

Episodes start at 0 and are truncated after ``horizon`` steps; they never terminate.
:class:`CorridorExpert` steps back toward 0 (and stays there), so its cost is 0.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ilcore.errors import ConfigError, SpaceMismatchError

LEFT, STAY, RIGHT = 0, 1, 2
_CELL = 24  # pixels per position in rendered frames


class CorridorEnv(gym.Env):
    """Stay in the corridor (position 0) for ``horizon`` steps; cost 1 per step outside it.

    Args:
        horizon: steps per episode (T).
        half_width: W; positions are clipped to [-W, W].
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, horizon: int = 100, half_width: int = 10, render_mode: str | None = None) -> None:
        if horizon < 1 or half_width < 1:
            raise ConfigError(f"The corridor's horizon and half_width must be >= 1, got {horizon} and {half_width}.")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"The corridor's render_mode must be 'rgb_array' or None, got {render_mode!r}.")
        self.render_mode = render_mode
        self.horizon = int(horizon)
        self.half_width = int(half_width)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2 * self.half_width + 1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self._pos = 0
        self._t = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(2 * self.half_width + 1, np.float32)
        obs[self._pos + self.half_width] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._pos, self._t = 0, 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = int(action)
        if a not in (LEFT, STAY, RIGHT):
            raise SpaceMismatchError(f"Corridor actions are 0 (left), 1 (stay), 2 (right); got {action!r}.")
        self._pos = int(np.clip(self._pos + a - 1, -self.half_width, self.half_width))
        self._t += 1
        cost = float(self._pos != 0)
        return self._obs(), -cost, False, self._t >= self.horizon, {}

    def render(self) -> np.ndarray | None:
        """(CELL * 3, CELL * (2W + 1), 3) uint8: a row of cells, the corridor (position 0) in
        green, the agent as a square on its cell; the bar below fills as the episode runs."""
        if self.render_mode != "rgb_array":
            return None
        n = 2 * self.half_width + 1
        img = np.full((3 * _CELL, n * _CELL, 3), 24, dtype=np.uint8)
        row = img[_CELL : 2 * _CELL]
        for i in range(n):
            tile = row[2:-2, i * _CELL + 2 : (i + 1) * _CELL - 2]
            tile[:] = (46, 160, 90) if i == self.half_width else (70, 76, 90)
        x = (self._pos + self.half_width) * _CELL
        row[_CELL // 4 : -_CELL // 4, x + _CELL // 4 : x + _CELL - _CELL // 4] = (250, 200, 40)
        filled = int(round(img.shape[1] * min(self._t / self.horizon, 1.0)))
        img[-_CELL // 3 :, :filled] = (110, 120, 140)  # time used of the horizon
        return img


def position_of(obs: np.ndarray) -> int:
    """The position encoded by a one-hot corridor observation."""
    o = np.asarray(obs)
    return int(np.argmax(o)) - (len(o) - 1) // 2


class CorridorExpert:
    """Steps back toward the corridor (position 0), stays there once in it. Cost 0."""

    documented_return = 0.0

    def act(self, obs: np.ndarray) -> int:
        pos = position_of(obs)
        return STAY if pos == 0 else (LEFT if pos > 0 else RIGHT)

    def reset(self) -> None:
        return None
