"""Demonstrate: the person drives; every step is recorded and labelled with what they did."""

from __future__ import annotations

from typing import Any

from app.input.intents import Intent, IntentKind
from app.modes.base import Mode, ModeView, StepClock, fmt_action
from app.modes.driver import EpisodeDriver


class DemoMode(Mode):
    name = "demo"
    title = "Demonstrate"
    kind = "demo"  # the episode kind in app_state.json (discard drops the last one of this kind)

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.driver = EpisodeDriver(session)
        self.clock = StepClock(session.fps, speed=0.5 if not session.settings.simulated else 1.0)
        self.paused = False
        self.waiting_for_start = True  # like gymnasium's wait_on_player: the episode starts on the first key
        self.message = ""

    def enter(self) -> None:
        super().enter()
        if not self.driver.running:
            self.driver.start()
            self.waiting_for_start = True

    def exit(self) -> None:
        if self.driver.running:
            self.driver.discard()  # an unfinished demo is not a demo

    def handle(self, intent: Intent) -> None:
        k = intent.kind
        if self.handle_playback(k):
            return
        if k is IntentKind.MOVE:
            self.held_action = intent.value
            if intent.value is not None:
                self.waiting_for_start = False
        elif k is IntentKind.RESTART:
            self.driver.discard()
            self.driver.start()
            self.waiting_for_start = self.held_action is None  # still holding a key: go on at once
            self.message = "episode restarted"
        elif k is IntentKind.DISCARD:
            dropped = self.session.discard_last_episode(self.kind)
            if dropped is not None and self.finished:
                self.finished = False  # one more demonstration is needed before moving on
                self.driver.start()
                self.waiting_for_start = True
            self.message = f"discarded {dropped}" if dropped else "no finished demo to discard"

    def update(self, dt: float) -> None:
        if self.paused or self.waiting_for_start or self.finished:
            return
        for _ in range(self.clock.steps(dt)):
            action = self.held_action if self.held_action is not None else self.session.noop_action()
            if self.take_step(action):
                episode_id = self.driver.finish(self.kind)
                self.message = f"saved {episode_id}: return {self.driver.total_return:.0f}"
                self.session.save()
                if self.session.round_episodes >= self.session.settings.demo_episodes:
                    self.finished = True
                    return
                self.driver.start()
                self.waiting_for_start = not self.session.settings.simulated
                return

    def done_summary(self) -> str:
        demos = [e for e in self.session.state.episodes if e["kind"] == self.kind and not e.get("discarded")]
        returns = ", ".join(f"{e['return']:.0f}" for e in demos[-5:])
        return f"{len(demos)} saved (returns {returns}) - Backspace discards the last one"

    def take_step(self, action: Any) -> bool:
        """Execute the person's action and record it as a labelled demo step; True when the episode ended.

        The step's label carries the person's time for it: one step at the current speed."""
        plan = self.driver.plan(demonstrate=True)
        outcome = self.session.controller.resolve(plan, action)
        _, done = self.driver.step(outcome=outcome, latency_ms=self.clock.step_ms())
        return done

    def view(self) -> ModeView:
        s = self.session
        demos = [e for e in s.state.episodes if e["kind"] == self.kind and not e.get("discarded")]
        prompt = None
        if self.waiting_for_start:
            prompt = "Press an action key to start"
        elif self.paused:
            prompt = "Paused"
        return ModeView(
            mode=self.name,
            title=self.title,
            subtitle=f"episode {min(s.round_episodes + 1, s.settings.demo_episodes)} of {s.settings.demo_episodes}",
            frame=self.driver.frame,
            prompt=prompt,
            prompt_detail=self.message or None,
            lines=[("step", str(self.driver.length)), ("return", f"{self.driver.total_return:.1f}"), ("action", fmt_action(self.held_action, self.action_names))],
            items_title="Saved demonstrations",
            items=[f"{e['id']}  return {e['return']:.0f}  ({e['length']} steps)" for e in reversed(demos)][:8],
            driver="you",
            paused=self.paused,
            recording=self.driver.running and not self.waiting_for_start,
            speed=self.clock.speed,
            accent="demo",
        )

    def help(self) -> list[tuple[str, str]]:
        return [("action keys", "drive (the episode starts on the first key)"), ("pause", ""), ("slower", ""), ("faster", ""), ("restart", ""), ("discard", ""), ("next", "finish demonstrating and train")]
