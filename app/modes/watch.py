"""Watch: the current policy plays (not recorded); returns are listed."""

from __future__ import annotations

from typing import Any

from app.input.intents import Intent, IntentKind
from app.modes.base import Mode, ModeView, StepClock, fmt_action
from app.modes.driver import EpisodeDriver


class WatchMode(Mode):
    name = "watch"
    title = "Watch"

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.driver = EpisodeDriver(session, record=False)
        self.clock = StepClock(session.fps, speed=1.0)
        self.paused = False
        self.returns: list[float] = []
        self.last_action: Any = None

    def enter(self) -> None:
        super().enter()
        if self.session.policy is not None and not self.driver.running:
            self.driver.start()

    def handle(self, intent: Intent) -> None:
        if self.handle_playback(intent.kind):
            return
        if intent.kind is IntentKind.RESTART and self.session.policy is not None:
            self.driver.start()

    def update(self, dt: float) -> None:
        if self.paused or not self.driver.running:
            return
        for _ in range(self.clock.steps(dt)):
            action, _ = self.session.propose(self.driver.obs)
            self.last_action = action
            _, done = self.driver.step(action)
            if done:
                self.returns.append(self.driver.total_return)
                if len(self.returns) >= self.session.settings.watch_episodes:
                    self.finished = True
                self.driver.start()
                return

    def view(self) -> ModeView:
        s = self.session
        return ModeView(
            mode=self.name,
            title=self.title,
            subtitle=f"policy v{s.state.policy_version}",
            frame=self.driver.frame,
            prompt="No learner yet" if s.policy is None else ("Paused" if self.paused else None),
            lines=[("step", str(self.driver.length)), ("return", f"{self.driver.total_return:.1f}"), ("action", fmt_action(self.last_action, self.action_names))],
            items_title="Returns",
            items=[f"episode {i + 1}: {r:.1f}" for i, r in enumerate(self.returns)][::-1][:8],
            driver="learner",
            paused=self.paused,
            speed=self.clock.speed,
            accent="watch",
        )

    def help(self) -> list[tuple[str, str]]:
        return [("pause", ""), ("slower", ""), ("faster", ""), ("restart", "new episode"), ("next", "go on to the summary")]
