"""Watch-only demonstrations: the person drives as in demonstrate, but only what is seen is saved.

Each episode is written observation-only (``EpisodeRecorder.observe``: observations and rewards,
no actions, no labels), as if the demonstration had been filmed. Such recordings are for learning
from observation (``ilcore train bco``, ``ilcore train tcn``); DAgger needs action labels, so a
watch-only session has no training or DAgger stages and ends in :class:`WatchOnlySummaryMode`,
which says what was saved where and the exact command to learn from it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.modes.base import ModeView, fmt_action
from app.modes.demo import DemoMode
from app.modes.driver import EpisodeDriver
from app.modes.summary import SummaryMode

NOT_RECORDED = "WATCH-ONLY - actions not recorded"


class WatchOnlyMode(DemoMode):
    """Demonstrate with the same keys (speed, pause, restart, discard), saving observations only."""

    name = "watch_only"
    title = "Watch-only demo"
    kind = "watch_only"

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.driver = EpisodeDriver(session, observation_only=True)

    def take_step(self, action: Any) -> bool:
        """Execute the person's action; only the observation it leads to is recorded."""
        self.session.note_watch_only_seconds(self.clock.step_ms() / 1000.0)  # driving is the person's time
        _, done = self.driver.step(action)
        return done

    def view(self) -> ModeView:
        base = super().view()
        s = self.session
        detail = self.message or ("your keys move the env; only what you see is saved" if self.waiting_for_start else None)
        return replace(
            base,
            # the banner's alert already says that actions are not recorded; a longer subtitle would run into it
            subtitle=f"episode {min(s.round_episodes + 1, s.settings.demo_episodes)} of {s.settings.demo_episodes}",
            prompt_detail=detail,
            lines=[("step", str(self.driver.length)), ("return", f"{self.driver.total_return:.1f}"),
                   ("action (not saved)", fmt_action(self.held_action, self.action_names)), ("saved", "observations + rewards")],
            items_title="Saved observation-only episodes",  # the items are DemoMode's, of this kind
            driver="you drive - actions not recorded",
            accent="watch_only",
        )

    def help(self) -> list[tuple[str, str]]:
        return [
            ("action keys", "drive (the episode starts on the first key); your actions are NOT saved"),
            ("pause", ""), ("slower", ""), ("faster", ""), ("restart", ""), ("discard", ""),
            ("next", "stop recording and show what was saved (no training, no DAgger)"),
        ]


class WatchOnlySummaryMode(SummaryMode):
    """The last screen of a watch-only session: what was saved where, and the next command."""

    def write_summary(self) -> dict[str, Any]:
        return self.session.write_watch_only_summary()

    def view(self) -> ModeView:
        s = self.session
        n = int(self.summary.get("observation_only_episodes", 0))
        mean_return = self.summary.get("mean_return")
        body: list[tuple[str, str]] = [
            ("heading", f"{n} observation-only episode{'' if n == 1 else 's'} saved (no actions) in"),
            ("command", str(s.path)),
        ]
        for what, command in s.next_commands():
            body += [("text", what + ":"), ("command", command)]
        return ModeView(
            mode=self.name,
            title=self.title,
            subtitle=f"{s.settings.env_id} - watch-only",  # the path is in the body, where it has room
            lines=[
                ("observation-only episodes", str(n)),
                ("steps", str(self.summary.get("steps", 0))),
                ("mean return", "-" if mean_return is None else f"{mean_return:.1f}"),
                ("human seconds", f"{s.human_seconds:.0f}"),
                ("actions recorded", "none"),
            ],
            items_title="Episodes",
            items=[f"{e['id']}  return {e['return']:.0f}  ({e['length']} steps)"
                   for e in s.state.episodes if not e.get("discarded")][:12],
            body=body,
            accent="summary",
        )
