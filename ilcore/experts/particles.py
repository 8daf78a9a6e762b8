"""Scripted expert for the particle sequence task family (:mod:`ilcore.envs.particles`)."""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import gymnasium as gym
import numpy as np

from ilcore.envs.particles import ENV_ID
from ilcore.experts.base import Expert


class ParticleSequenceExpert(Expert):
    """Heads straight for the next landmark of the task at full speed, slowing on arrival.

    The geometry comes from the observation (landmark offsets, visited flags), so the expert
    answers for any state a learner visits. The task is either given (``task``: landmark indices
    in order) or read from the bound env, which is why ``needs_env`` is True by default; with an
    explicit task no env is needed.

    Returns an action in [-1, 1]^2; at full speed the point covers ``max_speed`` per step.
    """

    env_ids: ClassVar[tuple[str, ...]] = (ENV_ID,)
    # Measured on 200 episodes (all tasks, seeds 0..199): every episode succeeds, return = task_length.
    documented_return: ClassVar[float | None] = 3.0
    needs_env: ClassVar[bool] = True

    def __init__(
        self, action_space: gym.Space, task: Sequence[int] | None = None, max_speed: float | None = None
    ) -> None:
        super().__init__(action_space)
        self.task = tuple(int(i) for i in task) if task is not None else None
        # None: the bound env's speed (so the last step lands on the landmark), else the default 0.15.
        self._max_speed = max_speed

    @property
    def max_speed(self) -> float:
        if self._max_speed is not None:
            return float(self._max_speed)
        return float(getattr(self._env, "max_speed", 0.15))

    def act(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        n = (obs.shape[0] - 2) // 4
        per_landmark = obs[2 : 2 + 3 * n].reshape(n, 3)  # (bearing_x, bearing_y, range)
        stage = int(round(obs[2 + 3 * n :].sum()))
        task = self.task if self.task is not None else self.env.task  # type: ignore[attr-defined]
        if stage >= len(task):
            return np.zeros(2, dtype=np.float32)
        bearing, dist = per_landmark[task[stage], :2], float(per_landmark[task[stage], 2])
        # Full speed along the straight line, but never overshoot (the last step lands on it).
        speed = min(1.0, dist / self.max_speed)
        # A unit direction times speed keeps both components in [-1, 1], so nothing is clipped.
        return (bearing * speed).astype(np.float32)
