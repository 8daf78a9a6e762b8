"""Small in-memory stand-ins for the DAgger controller's ports (writer, policy) and its labellers' experts,
so the controller's logic is tested without HDF5 or torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ilcore.types import Label


@dataclass
class FakeEpisode:
    id: str | None
    observations: list
    actions: list = field(default_factory=list)
    actors: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    infos: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    round: int = 0
    finished: bool = False


class FakeRecorder:
    def __init__(self, writer: "FakeWriter", first_obs: Any, round: int) -> None:
        self.writer = writer
        self.episode = FakeEpisode(None, [first_obs], round=round)

    def step(self, action, actor, reward, terminated, truncated, next_obs, info=None, wall_time=None) -> int:
        e = self.episode
        e.actions.append(action)
        e.actors.append(int(actor))
        e.rewards.append(reward)
        e.infos.append(dict(info or {}))
        e.observations.append(next_obs)
        return len(e.actions) - 1

    def label(self, step, action, *, source, reason, round=0, latency_ms=0.0) -> None:
        self.episode.labels.append(Label("?", step, action, source, reason, round, latency_ms))

    def finish(self) -> str:
        eid = f"ep_{len(self.writer.episodes):06d}"
        e = self.episode
        e.id = eid
        e.labels = [Label(eid, lab.step, lab.action, lab.source, lab.reason, lab.round, lab.latency_ms) for lab in e.labels]
        e.finished = True
        self.writer.episodes[eid] = e
        return eid

    def discard(self) -> None:
        self.writer.discarded += 1


class FakeWriter:
    path = "/nonexistent"

    def __init__(self) -> None:
        self.episodes: dict[str, FakeEpisode] = {}
        self.discarded = 0

    def begin_episode(self, first_obs, *, seed=None, round=0, policy_version=None, attrs=None) -> FakeRecorder:
        return FakeRecorder(self, first_obs, round)

    def add_label(self, label: Label) -> None:
        self.episodes[label.episode].labels.append(label)

    def retract_label(self, episode: str, step: int) -> None:
        labels = self.episodes[episode].labels
        latest = max(i for i, lab in enumerate(labels) if lab.step == step)
        del labels[latest]

    def discard_episode(self, episode_id: str) -> None:
        del self.episodes[episode_id]
        self.discarded += 1

    def flush(self) -> None:
        pass

    def all_labels(self) -> list[Label]:
        return [lab for e in self.episodes.values() for lab in e.labels]


@dataclass
class FakeOutput:
    action: np.ndarray
    uncertainty: np.ndarray
    member_actions: np.ndarray


class FakePolicy:
    """Acts 0 always; its disagreement is the first observation coordinate (so tests control it)."""

    version = 0

    def predict_ensemble(self, obs_batch: np.ndarray) -> FakeOutput:
        obs = np.asarray(obs_batch, dtype=np.float64)
        n = len(obs)
        return FakeOutput(np.zeros(n, np.int64), np.abs(obs[:, 0]), np.zeros((1, n), np.int64))


class ConstantExpert:
    """An 'expert' that always answers 1 and remembers what it was shown."""

    def __init__(self) -> None:
        self.seen: list = []

    def act(self, obs):
        self.seen.append(np.asarray(obs).copy())
        return 1

    def reset(self) -> None:
        pass


class CartPolePD:
    """A local CartPole expert (pole angle + angular velocity feedback) so these tests do not
    depend on the experts module; it balances for the full 500 steps."""

    def act(self, obs):
        x, x_dot, theta, theta_dot = (float(v) for v in obs)
        return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)

    def reset(self) -> None:
        pass
