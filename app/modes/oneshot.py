"""One-shot: the person records one demo of a chosen task, then watches the policy do it from new starts.

Like every mode it works through its session, here an :class:`app.session.OneShotSession`: the
session owns the particle env, the demo-conditioned policy (a folder written by ``ilcore train
oneshot``) and the folder each kept demo is written to (task id in the episode attrs). Phases:

- ``record``: STEP_FORWARD / STEP_BACK pick the task before the first key; MOVE drives; reaching
  every landmark in order keeps the demo (running out of time starts the attempt again).
- ``watch``: the policy, shown that demo, runs ``watch_episodes`` episodes from new layouts.
  RESTART records another demo; NEXT ends the mode.

PAUSE, SLOWER and FASTER work in both phases, as in the other modes. ``python -m app --oneshot RUN``
runs this mode on its own (see :class:`app.modes.manager.OneShotManager`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.input.intents import Intent, IntentKind
from app.modes.base import Mode, ModeView, StepClock, fmt_action

if TYPE_CHECKING:
    from app.session import OneShotSession

BADGE_BAND = 20  # a dark band above the arena for the renderer's driver badge


class OneShotMode(Mode):
    name = "oneshot"
    title = "One-shot"
    session: "OneShotSession"

    def __init__(self, session: "OneShotSession", *, task_id: int | None = None, fps: int = 15) -> None:
        super().__init__(session)  # type: ignore[arg-type]
        self.task_order = session.task_order
        self.task_id = int(task_id) if task_id is not None else self.task_order[0]
        self.watch_episodes = session.settings.watch_episodes
        self.clock = StepClock(fps)
        self.phase = "record"
        self.waiting_for_start = True
        self.message = ""
        self.demo: Any = None  # the kept demo (an ilcore TaskDemo) the policy is shown
        self.demos_saved: list[Path] = []
        self.results: list[bool] = []  # success of each watched episode
        self.history: list[tuple[int, int, int]] = []  # (task id, successes, episodes) of each finished watch
        self.paused = False
        self._obs: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._conditioned: Any = None
        self._reset_episode()

    @property
    def obs(self) -> np.ndarray:
        """The observation of the state on screen (what the person, or the simulated one, reacts to)."""
        return self._current

    # -- episode plumbing -----------------------------------------------------------------------
    def _reset_episode(self) -> None:
        obs = self.session.reset_env(self.task_id)
        self._current = obs
        self._obs, self._actions = [obs], []

    def _start_recording(self) -> None:
        self.phase = "record"
        self.waiting_for_start = True
        self.demo = None
        self._reset_episode()

    def _start_watching(self) -> None:
        assert self.demo is not None
        self.phase = "watch"
        self.results = []
        self._conditioned = self.session.conditioned(self.demo)
        self._reset_episode()

    # -- Mode interface -------------------------------------------------------------------------
    def handle(self, intent: Intent) -> None:
        k = intent.kind
        if self.handle_playback(k):
            return
        if k is IntentKind.MOVE:
            self.held_action = None if intent.value is None else np.asarray(intent.value, np.float32)
            if intent.value is not None and self.phase == "record":
                self.waiting_for_start = False
        elif k in (IntentKind.STEP_FORWARD, IntentKind.STEP_BACK) and self.phase == "record" and self.waiting_for_start:
            i = self.task_order.index(self.task_id) + (1 if k is IntentKind.STEP_FORWARD else -1)
            self.task_id = self.task_order[i % len(self.task_order)]
            self._reset_episode()
        elif k is IntentKind.RESTART:
            self.message = "record a new demo"
            self._start_recording()
        elif k is IntentKind.NEXT:
            self.finished = True

    def update(self, dt: float) -> None:
        if self.finished or self.paused or (self.phase == "record" and self.waiting_for_start):
            return
        if self.phase == "watch" and len(self.results) >= self.watch_episodes:
            return
        for _ in range(self.clock.steps(dt)):
            if self.phase == "record":
                action = self.held_action if self.held_action is not None else self.session.noop_action()
            else:
                action = self._conditioned.act(self._current)
            obs, done, success = self.session.step(action)
            self._current = obs
            self._obs.append(obs)
            self._actions.append(np.asarray(action, np.float32))
            if done:
                self._episode_over(success)
                return

    def _episode_over(self, success: bool) -> None:
        if self.phase == "record":
            if not success:
                self.message = "time ran out before every landmark was reached; try again"
                self._start_recording()
                return
            self.demo, path = self.session.keep_demo(self._obs, self._actions, self.task_id)
            if path is not None:
                self.demos_saved.append(path)
            self.message = f"demo kept ({self.demo.length} steps); now the policy tries it from new starts"
            self._start_watching()
            return
        self.results.append(success)
        if len(self.results) < self.watch_episodes:
            self._reset_episode()
        else:
            self.history.append((self.task_id, sum(self.results), len(self.results)))
            self.message = f"the policy finished the task {sum(self.results)} of {len(self.results)} times; R records another demo"

    def view(self) -> ModeView:
        prompt = None
        if self.phase == "record" and self.waiting_for_start:
            prompt = f"Show the task: {self.session.describe_task(self.task_id)}"
        elif self.paused:
            prompt = "Paused"
        watching = self.phase == "watch"
        return ModeView(
            mode=self.name,
            title=self.title,
            subtitle=("watching the policy" if watching else "recording your demo")
            + f" - task {self.task_id}: {self.session.describe_task(self.task_id)}",
            frame=self._frame(),
            prompt=prompt,
            prompt_detail=self.message or ("step forward/back to pick another task; move to start" if prompt else None),
            # the box goes to the half of the arena the point is not in, so its start stays visible
            prompt_at="top" if float(self.session.point()[1]) < 0 else "bottom",
            lines=[
                ("phase", self.phase),
                ("step", str(len(self._actions))),
                ("action", fmt_action(self.held_action if not watching else (self._actions[-1] if self._actions else None))),
                ("policy successes", f"{sum(self.results)} / {len(self.results)}" if watching else "-"),
            ],
            items_title="Saved one-shot demos",
            items=[p.name for p in reversed(self.demos_saved)][:8],
            progress=(len(self.results) / self.watch_episodes) if watching else None,
            progress_label="new starts",
            driver="learner" if watching else "you",
            paused=self.paused,
            recording=self.phase == "record" and not self.waiting_for_start,
            speed=self.clock.speed,
            accent="watch" if watching else "demo",
        )

    def _frame(self) -> np.ndarray:
        """The env's frame with a dark band on top, so the driver badge does not hide the task strip."""
        frame = self.session.render()
        band = np.full((BADGE_BAND, frame.shape[1], 3), 30, np.uint8)
        return np.concatenate([band, frame])

    def help(self) -> list[tuple[str, str]]:
        return [
            ("action keys", "drive the point to the landmarks in the order shown"),
            ("step_forward", "next task (before starting)"),
            ("step_back", "previous task (before starting)"),
            ("restart", "record another demo"),
            ("pause", "pause / resume"),
            ("slower", "slower"),
            ("faster", "faster"),
            ("next", "leave one-shot"),
        ]
