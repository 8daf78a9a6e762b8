"""Runs one env episode at a time; recorded episodes go through the session's DAgger controller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from app.session import Session


class EpisodeDriver:
    """Holds the running episode: observation, frame, return and length.

    With ``record=True`` every step is committed to the controller (which writes it through the
    SessionWriter with its label); with ``record=False`` (watch) nothing is written. With
    ``observation_only=True`` (watch-only demos) each step is written as an observation without
    its action, past the controller: the controller's steps always carry an action and an actor.
    """

    def __init__(self, session: "Session", *, record: bool = True, observation_only: bool = False) -> None:
        self.session = session
        self.record = record
        self.observation_only = observation_only
        self.obs: Any = None
        self._frame: np.ndarray | None = None
        self._frame_stale = False
        self.total_return = 0.0
        self.length = 0
        self.labels_in_episode = 0
        self.running = False

    def start(self) -> None:
        if self.running and self.record:
            self.discard()
        self.obs = self.session.reset_env()
        self._frame_stale = True
        self.total_return = 0.0
        self.length = 0
        self.labels_in_episode = 0
        if self.record and self.observation_only:
            self.session.begin_observation_episode(self.obs)
        elif self.record:
            self.session.begin_episode(self.obs)
        self.running = True

    def propose(self) -> Any:
        """The controller's Proposal for the current state (call once per step before :meth:`step`)."""
        return self.session.controller.propose(self.obs)

    def step(self, action: Any, actor: Any, *, label: Any = None, label_reason: str | None = None, latency_ms: float = 0.0) -> tuple[int, bool]:
        """Execute ``action``; returns (step index, episode over). Observation-only drivers store
        neither ``action`` nor ``label``: only what a camera would have seen (and the reward)."""
        next_obs, reward, terminated, truncated, _info = self.session.env.step(action)
        index = self.length
        if self.record and self.observation_only:
            index = self.session.observe_step(next_obs, float(reward), bool(terminated), bool(truncated))
        elif self.record:
            index = self.session.controller.commit(
                action, actor, float(reward), bool(terminated), bool(truncated), next_obs,
                label=label, label_reason=label_reason, latency_ms=latency_ms,
            )
            if label is not None:
                self.labels_in_episode += 1
                self.session.state.labels += 1
                self.session.state.human_seconds += latency_ms / 1000.0
        self.obs = next_obs
        self.total_return += float(reward)
        self.length += 1
        self._frame_stale = True  # rendered when someone looks: several steps per frame cost one render
        return index, bool(terminated or truncated)

    @property
    def frame(self) -> np.ndarray | None:
        """The env's rgb_array frame for the current state (H, W, 3) uint8, rendered on demand."""
        if self._frame_stale:
            self._frame = self.session.render()
            self._frame_stale = False
        return self._frame

    def finish(self, kind: str) -> str | None:
        self.running = False
        if not self.record:
            return None
        if self.observation_only:
            return self.session.finish_observation_episode(kind=kind, total_return=self.total_return, length=self.length)
        return self.session.finish_episode(kind=kind, total_return=self.total_return, length=self.length, labels=self.labels_in_episode)

    def discard(self) -> None:
        """Drop the unfinished episode (restart, leaving the mode); nothing of it was saved."""
        if self.record and self.running and self.observation_only:
            self.session.discard_observation_episode()
        elif self.record and self.running and self.session.controller.in_episode:
            self.session.controller.end_episode(discard=True)
            self.session.state.labels -= self.labels_in_episode
        self.running = False
