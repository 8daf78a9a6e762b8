"""In-memory stand-ins for the app's sessions, so a mode can be tested on its own.

A mode does everything to env, learner and data through its session (``app/session.py``); these
fakes give a mode the same surface with a scripted world and no ilcore behind it: no env to make,
no policy to train, no folder, no trainer process. Tests that need the real glue (the recording,
the controller's counts, the trainer) use ``make_app`` in ``tests/app/conftest.py`` instead.

- :class:`FakeSession` stands in for :class:`app.session.Session` (the DAgger plan's modes).
- :class:`FakeOneShotSession` stands in for :class:`app.session.OneShotSession`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from app.session import OneShotSettings, SessionSettings, SessionState
from app.trainer import TrainingStatus
from ilcore.algos.dagger.controller import Totals

FRAME = np.zeros((8, 8, 3), np.uint8)


class CountingEnv:
    """Observations count the steps; every step pays ``reward``; an episode is ``length`` steps."""

    def __init__(self, length: int = 5, reward: float = 1.0) -> None:
        self.length = length
        self.reward = reward
        self.action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.spaces.Box(0, np.inf, (1,), np.float32)
        self.t = 0
        self.actions: list[Any] = []

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.actions.append(action)
        self.t += 1
        return np.array([self.t], np.float32), self.reward, self.t >= self.length, False, {}


class ConstantPolicy:
    """A learner that always proposes ``action``."""

    def __init__(self, action: Any = 1) -> None:
        self.action = action

    def act(self, obs: Any) -> Any:
        return self.action


@dataclass
class FakeTrainer:
    status: TrainingStatus = field(default_factory=TrainingStatus)


class FakeSession:
    """The surface of :class:`app.session.Session` that the watch, train and DAgger modes read,
    over a :class:`CountingEnv`. ``labels`` is what :meth:`totals` reports; ``trainings`` lists
    the versions :meth:`start_training` was asked for (nothing is trained: a test sets
    ``state.policy_version`` to say one landed)."""

    def __init__(self, *, policy: Any = None, episode_length: int = 5, labels: int = 0, **settings: Any) -> None:
        self.settings = SessionSettings(**settings)
        self.state = SessionState()
        self.env = CountingEnv(episode_length)
        self.fps = 30
        self.policy = policy
        self.labels = labels
        self.autopilot = False
        self.attention_time = 0.0
        self.action_names: Any = None
        self.policy_notice = ""
        self.trainer = FakeTrainer()
        self.trainings: list[int] = []
        self.resets = 0

    @property
    def round(self) -> int:
        return 0

    @property
    def round_episodes(self) -> int:
        return 0

    @property
    def query_rate(self) -> float | None:
        return None

    def totals(self) -> Totals:
        return Totals(episodes=0, labels=self.labels, human_seconds=0.0, round=0, round_episodes=0,
                      round_learner_steps=0, round_asked=0)

    def reset_env(self, *, recorded: bool = True) -> np.ndarray:
        self.resets += 1
        return self.env.reset()[0]

    def render(self) -> np.ndarray:
        return FRAME

    def noop_action(self) -> Any:
        return 0

    def propose(self, obs: Any) -> tuple[Any, float]:
        return self.policy.act(obs), 0.0

    def start_training(self) -> int:
        version = self.state.policy_version + 1
        self.state.labels_at_last_train = self.labels
        self.trainings.append(version)
        return version

    def poll_training(self) -> list[dict[str, Any]]:
        return []

    def save(self) -> None:
        pass


@dataclass(frozen=True)
class FakeDemo:
    observations: np.ndarray
    actions: np.ndarray
    task_id: int

    @property
    def length(self) -> int:
        return len(self.actions)


class ConditionedWalker:
    """The one-shot policy shown a demo: it repeats the demo's first action."""

    def __init__(self, demo: FakeDemo) -> None:
        self.demo = demo

    def act(self, obs: Any) -> np.ndarray:
        return self.demo.actions[0]


class FakeOneShotSession:
    """The surface of :class:`app.session.OneShotSession` over a walk along x: an episode succeeds
    once the point has moved ``goal`` to the right, and ends unsuccessful after ``horizon`` steps.

    Kept demos go to ``kept`` (and, with ``out``, get a folder name there; nothing is written).
    Shown a demo, the policy repeats its first action, so a demo that walks right is performed.
    """

    def __init__(self, *, watch_episodes: int = 2, horizon: int = 10, goal: float = 3.0, out: Path | None = None) -> None:
        self.settings = OneShotSettings(watch_episodes=watch_episodes)
        self.state = SessionState()
        self.autopilot = False
        self.action_names: Any = None
        self.policy_name = "fake"
        self.tasks = [(0, 1, 2), (1, 2, 3), (2, 3, 0), (3, 0, 1)]
        self.task_order = [2, 3, 0, 1]  # "held-out" tasks first, as the real session orders them
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.horizon, self.goal, self.out = horizon, goal, out
        self.resets: list[int] = []  # the task of every reset
        self.kept: list[FakeDemo] = []
        self._point = np.zeros(2, np.float32)
        self._t = 0

    def describe_task(self, task_id: int) -> str:
        return "visit " + " then ".join(str(i) for i in self.tasks[task_id])

    def reset_env(self, task_id: int) -> np.ndarray:
        self.resets.append(task_id)
        self._point[:] = 0.0
        self._t = 0
        return self._point.copy()

    def step(self, action: Any) -> tuple[np.ndarray, bool, bool]:
        self._point += np.asarray(action, np.float32)
        self._t += 1
        success = bool(self._point[0] >= self.goal)
        return self._point.copy(), success or self._t >= self.horizon, success

    def noop_action(self) -> np.ndarray:
        return np.zeros(2, np.float32)

    def render(self) -> np.ndarray:
        return FRAME

    def point(self) -> np.ndarray:
        return self._point.copy()

    def keep_demo(self, observations: list[np.ndarray], actions: list[np.ndarray], task_id: int) -> tuple[FakeDemo, Path | None]:
        demo = FakeDemo(np.stack(observations), np.stack(actions), task_id)
        self.kept.append(demo)
        return demo, None if self.out is None else self.out / f"oneshot-demo-{len(self.kept):03d}"

    def conditioned(self, demo: FakeDemo) -> ConditionedWalker:
        return ConditionedWalker(demo)

    def close(self) -> None:
        pass
