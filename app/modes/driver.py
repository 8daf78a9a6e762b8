"""Runs one env episode at a time; recorded episodes go through the session's DAgger controller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ilcore.algos.dagger.run import scalar_info

if TYPE_CHECKING:
    from app.session import Session


class EpisodeDriver:
    """Holds the running episode: observation, frame, return and length.

    With ``record=True`` every step is planned and committed by the controller's one step rule
    (which writes it through the SessionWriter with its label); with ``record=False`` (watch)
    nothing is written. With ``observation_only=True`` (watch-only demos) each step is written as
    an observation without its action, past the controller: the controller's steps always carry
    an action and an actor.
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
        self.obs = self.session.reset_env(recorded=self.record)
        self._frame_stale = True
        self.total_return = 0.0
        self.length = 0
        self.labels_in_episode = 0
        if self.record and self.observation_only:
            self.session.begin_observation_episode(self.obs)
        elif self.record:
            self.session.begin_episode(self.obs)
        self.running = True

    def plan(self, *, takeover: bool = False, demonstrate: bool = False) -> Any:
        """The controller's StepPlan for the current state (once per step, before :meth:`step`)."""
        return self.session.controller.plan_step(self.obs, takeover=takeover, demonstrate=demonstrate)

    def step(self, action: Any = None, *, outcome: Any = None, latency_ms: float = 0.0) -> tuple[int, bool]:
        """Execute a resolved step (``outcome``, from the controller) or, unrecorded, ``action``;
        returns (step index, episode over). Observation-only drivers store neither action nor
        label: only what a camera would have seen (and the reward)."""
        executed = outcome.action if outcome is not None else action
        next_obs, reward, terminated, truncated, info = self.session.env.step(executed)
        index = self.length
        if self.record and self.observation_only:
            index = self.session.observe_step(next_obs, float(reward), bool(terminated), bool(truncated))
        elif self.record:
            index = self.session.controller.commit_outcome(
                outcome, float(reward), bool(terminated), bool(truncated), next_obs, latency_ms=latency_ms,
                info=scalar_info(info),
            )
            self.labels_in_episode += int(outcome.label is not None)
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
        self.running = False
