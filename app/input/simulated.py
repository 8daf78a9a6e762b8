"""The engine's simulated person, playing the human's part through intents (``--simulate``).

It sees what a person would see (the current mode and its state) and answers with the same
intents a keyboard would produce: it drives demonstrations with the scripted expert, answers
live queries after a short reaction time, takes over when the learner keeps disagreeing with it,
labels the review queue, and quits at the summary. The labels it gives carry source "simulated".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.input.base import Autopilot
from app.input.intents import Intent, IntentKind
from app.session import ask_labeler, simulated_person

REACTION_FRAMES = 3  # frames a query waits before the simulated person answers (it is visible in the HUD)
TAKEOVER_AFTER = 4  # consecutive disagreeing learner steps before it takes over
TAKEOVER_FRAMES = 20
MAX_TAKEOVERS_PER_EPISODE = 2


class SimulatedPersonDevice(Autopilot):
    name = "simulated"

    def __init__(self, labeler: Any, *, reaction_frames: int = REACTION_FRAMES, quit_at_summary: bool = True,
                 interventions: bool = True) -> None:
        self.labeler = labeler  # ilcore SimulatedPerson (or any Labeler): label(obs, ctx) -> action
        self.interventions = interventions  # take over when the learner keeps disagreeing (--interventions)
        self.reaction_frames = reaction_frames
        self.quit_at_summary = quit_at_summary
        self._waited = 0
        self._disagree = 0
        self._driving = 0
        self._takeovers = 0
        self._last_episode_len = -1
        self._summary_frames = 0

    def _act(self, obs: Any, reason: str = "demo") -> Any:
        return ask_labeler(self.labeler, obs, reason)

    def poll(self, manager: Any) -> list[Intent]:
        mode = manager.current
        name = mode.name
        out: list[Intent] = []
        if name in ("demo", "watch_only"):  # watch-only demos are driven the same way; only what is saved differs
            if mode.driver.running:
                out.append(Intent(IntentKind.MOVE, self.labeler.expert.act(mode.driver.obs), device=self.name))
        elif name == "dagger" and mode.driver.running:
            if mode.driver.length < self._last_episode_len:
                self._takeovers = 0
            self._last_episode_len = mode.driver.length
            if mode.pending is not None and not mode.taking_over:
                self._waited += 1
                if self._waited >= self.reaction_frames:
                    self._waited = 0
                    out.append(Intent(IntentKind.LABEL, self._act(mode.driver.obs, "uncertainty"), device=self.name))
            elif self._driving > 0:
                self._driving -= 1
                if self._driving == 0:
                    out.append(Intent(IntentKind.RELEASE, device=self.name))
                else:
                    out.append(Intent(IntentKind.MOVE, self.labeler.expert.act(mode.driver.obs), device=self.name))
            elif mode.last_proposed is not None and self.interventions:
                expert = self.labeler.expert.act(mode.driver.obs)
                same = np.allclose(np.asarray(expert, dtype=float), np.asarray(mode.last_proposed, dtype=float), atol=0.25)
                self._disagree = 0 if same else self._disagree + 1
                if self._disagree >= TAKEOVER_AFTER and self._takeovers < MAX_TAKEOVERS_PER_EPISODE:
                    self._disagree = 0
                    self._takeovers += 1
                    self._driving = TAKEOVER_FRAMES
                    out.append(Intent(IntentKind.TAKEOVER, device=self.name))
                    out.append(Intent(IntentKind.MOVE, expert, device=self.name))
        elif name == "review" and mode.current() is not None:
            self._waited += 1
            if self._waited >= self.reaction_frames:
                self._waited = 0
                obs = mode.session.query_observation(mode.current())
                out.append(Intent(IntentKind.LABEL, self._act(obs, "review"), device=self.name))
        elif name == "summary" and self.quit_at_summary:
            self._summary_frames += 1
            if self._summary_frames > 30:  # leave the summary on screen for a moment
                out.append(Intent(IntentKind.QUIT, device=self.name))
        return out


def build_simulated_person(session: Any, **kwargs: Any) -> SimulatedPersonDevice:
    """The simulated person for ``session``'s env: the engine's scripted expert + SimulatedPerson."""
    kwargs.setdefault("interventions", session.settings.interventions)
    return SimulatedPersonDevice(simulated_person(session), **kwargs)


class OneShotSimulatedPerson(Autopilot):
    """Plays the person in ``--oneshot --simulate``: records the demo with the scripted particle expert.

    While the mode records, it holds the expert's action for the task on screen (a fresh expert
    whenever the task changes); once the policy has run every watch episode it waits a moment and
    quits, so an unattended run ends by itself.
    """

    name = "simulated"

    def __init__(self, *, linger_frames: int = 30) -> None:
        self.linger_frames = linger_frames
        self._expert: Any = None
        self._task: tuple[int, ...] | None = None
        self._done_frames = 0

    def poll(self, manager: Any) -> list[Intent]:
        mode = manager.current
        if mode.phase == "record":
            task = mode.session.tasks[mode.task_id]
            if task != self._task:
                self._expert = mode.session.expert_for(mode.task_id)
                self._task = task
            return [Intent(IntentKind.MOVE, self._expert.act(mode.obs), device=self.name)]
        if len(mode.results) >= mode.watch_episodes:
            self._done_frames += 1
            if self._done_frames > self.linger_frames:
                return [Intent(IntentKind.QUIT, device=self.name)]
        return []
