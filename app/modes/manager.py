"""Owns the modes and walks the session plan; handles the intents that belong to no one mode."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from app.input.intents import Intent, IntentKind
from app.modes.base import Mode, ModeView
from app.modes.dagger import DaggerMode
from app.modes.demo import DemoMode
from app.modes.oneshot import OneShotMode
from app.modes.review import ReviewMode
from app.modes.summary import SummaryMode
from app.modes.train import TrainMode
from app.modes.watch import WatchMode
from app.modes.watch_only import NOT_RECORDED, WatchOnlyMode, WatchOnlySummaryMode
from app.trainer import TrainingStatus

if TYPE_CHECKING:
    from app.session import OneShotSession

MODE_CLASSES: dict[str, type[Mode]] = {
    "demo": DemoMode, "train": TrainMode, "dagger": DaggerMode, "review": ReviewMode, "watch": WatchMode, "summary": SummaryMode,
}


@dataclass
class HudView:
    """The always-visible status line."""

    mode: str
    stage: str  # "stage 3 of 12"
    round: int
    rounds: int
    labels: int
    query_rate: float | None
    fps: float
    recording: bool
    policy_version: int
    training: TrainingStatus
    devices: list[str]
    simulated: bool
    facts: list[str] | None = None  # replaces "labels" and "query" in the banner (modes outside the DAgger plan)
    policy: str = ""  # the policy shown in the footer; "" = "v<policy_version>"
    hints: str = "F1 help   N next   P pause   Esc quit"
    alert: str = ""  # drawn first in the banner, in the warning colour (e.g. that actions are not recorded)
    recording_label: str = "REC"  # beside the red dot while recording
    pace: str = ""  # "slowed to 74% ...": the machine cannot keep the env's rate (set by the loop)


IDLE_AFTER_S = 15.0  # no key or stick for this long: the person is away and their clock stops
NOTICE_S = 12.0  # how long a notice (what a resume recovered) stays in the banner without a key

STAGE_NAMES = {"demo": "demonstrations", "train": "training", "dagger": "DAgger round", "review": "review",
               "watch": "watching the policy", "summary": "the summary"}


class ModeManager:
    """Current mode + plan position. ``transitions`` lists every mode entered, for tests and logs.

    The person moves the session on: when a stage is done the manager shows what it did and what
    comes next and waits for Enter or N (Z still undoes the stage's last label). Only with
    ``session.autopilot`` (``--simulate``, ``--autopilot``) does it move on by itself. It also runs
    the person's attention clock (``session.attention_time``: time not paused and not idle), from
    which every label's latency is measured.
    """

    def __init__(self, session: Any, modes: dict[str, Mode] | None = None) -> None:
        self.session = session
        self.modes: dict[str, Mode] = modes or {name: cls(session) for name, cls in MODE_CLASSES.items()}
        self.plan = session.settings.plan()
        self.current: Mode = self.modes[self.plan[0].partition(":")[0]]
        self.help_visible = False
        self.quit_requested = False
        self.off_plan = False  # the person jumped to a mode with F2..F7
        self.transitions: list[str] = []
        self.waiting = False  # the stage is done: waiting for the person to move on
        self.confirm_quit = False  # Esc was pressed while something was running: a second Esc quits
        self.takeover_held = False  # the takeover key is down (kept across a round boundary)
        self.idle_for = 0.0
        self.notice = ""
        self.notice_for = 0.0
        self.on_stage: Any = None  # called with (index, plan length, stage) on entering a plan stage

    @property
    def autopilot(self) -> bool:
        return bool(getattr(self.session, "autopilot", False))

    def start(self) -> None:
        recovered = getattr(self.session, "recovered", None)
        messages = list(getattr(getattr(self.session, "writer", None), "recovery_messages", []) or [])
        if recovered is not None:
            messages.insert(0, recovered.sentence())
        if messages:
            self.notice, self.notice_for = " | ".join(messages), NOTICE_S
        self._enter_stage(min(self.session.state.stage, len(self.plan) - 1))

    def _enter(self, mode: Mode, label: str) -> None:
        if mode is not self.current:
            self.current.exit()
        self.current = mode
        self.waiting = False
        self.transitions.append(label)
        mode.enter()
        if isinstance(mode, DaggerMode):
            mode.taking_over = self.takeover_held  # still holding the takeover key: keep control
            mode.waiting_for_start = not self.autopilot and mode.driver.running and not mode.finished

    def _enter_stage(self, index: int) -> None:
        stage = self.plan[index]
        name, _, arg = stage.partition(":")
        mode = self.modes[name]
        if isinstance(mode, DaggerMode):
            mode.round = int(arg)
        self.off_plan = False
        self._enter(mode, stage)
        if self.on_stage is not None:
            self.on_stage(index, len(self.plan), stage)

    def advance(self) -> None:
        """Go to the next stage of the plan (or back to the plan after an off-plan visit)."""
        state = self.session.state
        if self.off_plan:
            self._enter_stage(state.stage)
            return
        if state.stage + 1 >= len(self.plan):
            return  # the summary is the last stage
        leaving = self.plan[state.stage].partition(":")[0]
        if leaving in ("demo", "dagger"):
            self.current.exit()  # an unfinished episode is dropped before the round closes
        if leaving in ("demo", "review"):
            # Round 0 = demonstrations; a DAgger round ends once its deferred states were reviewed,
            # as `ilcore dagger` answers the queue before the round's retraining.
            self.session.end_round()
        state.stage += 1
        self.session.save()
        self._enter_stage(state.stage)

    def goto(self, name: str) -> None:
        mode = self.modes.get(name)
        if mode is None or mode is self.current:
            return
        self.off_plan = True
        self._enter(mode, name)

    def extra_help(self) -> list[tuple[str, str]]:
        """Help-overlay rows for the keys the manager owns beyond help and quit."""
        return [("F2-F7", "jump to demo, train, DAgger, review, watch, summary")]

    def handle(self, intent: Intent) -> None:
        k = intent.kind
        self.idle_for = 0.0
        if k is not IntentKind.MOVE or intent.value is not None:
            self.notice_for = min(self.notice_for, 2.0)  # the person is back: the notice fades soon
        if k is IntentKind.QUIT:
            if self.confirm_quit or self.autopilot or not self.current.busy():
                self.quit_requested = True
            else:
                self.confirm_quit = True  # mid-episode: ask first
            return
        self.confirm_quit = False
        if k is IntentKind.TAKEOVER:
            self.takeover_held = True
        elif k is IntentKind.RELEASE:
            self.takeover_held = False
        if k is IntentKind.HELP:
            self.help_visible = not self.help_visible
        elif k is IntentKind.ACCEPT and (self.waiting or self.current.name == "watch"):
            self.advance()  # Enter moves on from a finished stage, and from watching at any time
        elif k is IntentKind.NEXT:
            self.advance()
        elif k is IntentKind.GOTO:
            self.goto(str(intent.value))
        elif k is IntentKind.KEEP_POLICY:
            self.session.keep_previous_policy()
        else:
            self.current.handle(intent)

    def update(self, dt: float) -> None:
        self.session.poll_training()  # swaps a freshly trained policy in as soon as it lands
        self.idle_for += dt
        self.notice_for = max(0.0, self.notice_for - dt)
        if not getattr(self.current, "paused", False) and (self.idle_for <= IDLE_AFTER_S or self.autopilot):
            self.session.attention_time += dt
        self.current.update(dt)
        if self.current.finished and self.current.name != "summary":
            if self.autopilot or self.current.nothing_to_do:
                self.advance()
            else:
                self.waiting = True
        else:
            self.waiting = False

    def next_stage_text(self) -> str:
        if self.off_plan:
            return "back to " + STAGE_NAMES.get(self.plan[self.session.state.stage].partition(":")[0], "the plan")
        nxt = self.session.state.stage + 1
        while nxt < len(self.plan) - 1 and self._will_skip(self.plan[nxt]):
            nxt += 1
        if nxt >= len(self.plan):
            return "the summary"
        name, _, arg = self.plan[nxt].partition(":")
        return STAGE_NAMES.get(name, name) + (f" {arg}" if name == "dagger" else "")

    def _will_skip(self, stage: str) -> bool:
        """An upcoming stage with nothing for the person (an empty review; training on nothing new)."""
        s = self.session
        name, _, arg = stage.partition(":")
        if name == "review":
            return not [q for q in s.review_queue() if not arg or q.round == int(arg)]
        if name == "train":
            return s.policy is not None and s.totals().labels == s.state.labels_at_last_train
        return False

    def view(self) -> ModeView:
        view = self.current.view()
        if self.confirm_quit:
            return replace(view, prompt="Quit?", prompt_detail="Esc again quits (the running episode is dropped; "
                           "everything finished is saved) - any other key carries on", paused=True)
        if self.waiting:
            undo = " - Z undoes the last label" if self.current.can_undo() else ""
            done = self.current.done_summary()
            note = str(getattr(self.current, "message", ""))
            if "undone" in note:  # Z while the stage waits: say what it took back
                done = f"{note}; {done}" if done else note
            return replace(view, prompt=f"{view.title}: done",
                           prompt_detail=(done + ". " if done else "") + f"Next: {self.next_stage_text()}. "
                           f"Enter (or N) to continue{undo}", paused=True, driver=None, recording=False)
        return view

    def hud(self, fps: float, devices: list[str]) -> HudView:
        s = self.session
        view_recording = getattr(getattr(self.current, "driver", None), "running", False) and getattr(self.current.driver, "record", False)
        return HudView(
            mode=self.current.name,
            stage=f"stage {min(s.state.stage, len(self.plan) - 1) + 1} of {len(self.plan)}",
            round=s.round,
            rounds=s.settings.rounds,
            labels=s.totals().labels,
            query_rate=s.query_rate,
            fps=fps,
            recording=bool(view_recording),
            policy_version=s.controller.policy_version or 0,
            training=s.trainer.status,
            devices=devices,
            simulated=s.settings.simulated,
            alert=s.policy_notice or (self.notice if self.notice_for > 0 else ""),
        )


class OneShotManager(ModeManager):
    """``python -m app --oneshot RUN``: a one-stage :class:`ModeManager` over an
    :class:`app.session.OneShotSession` whose plan is the one-shot mode alone.

    The loop and the renderer see what they see of any manager, so the one-shot mode gets the
    same window, HUD and help overlay. What differs is what a one-stage plan with nothing saved
    needs: leaving the mode (N) or Esc ends the app at once (there is no next stage, and a demo in
    progress is only an attempt), F2-F7 do nothing, and there is no trainer to poll.
    """

    def __init__(self, session: "OneShotSession", *, task_id: int | None = None) -> None:
        super().__init__(session, modes={"oneshot": OneShotMode(session, task_id=task_id)})
        self.policy_name = session.policy_name

    @property
    def mode(self) -> "OneShotMode":
        return self.current  # type: ignore[return-value]

    def extra_help(self) -> list[tuple[str, str]]:
        return []

    def goto(self, name: str) -> None:
        return

    def handle(self, intent: Intent) -> None:
        k = intent.kind
        if k is IntentKind.HELP:
            self.help_visible = not self.help_visible
        elif k is IntentKind.QUIT:
            self.quit_requested = True
        elif k is not IntentKind.GOTO:
            self.current.handle(intent)

    def update(self, dt: float) -> None:
        self.current.update(dt)
        if self.current.finished:
            self.quit_requested = True

    def hud(self, fps: float, devices: list[str]) -> HudView:
        m = self.mode
        watched = sum(n for _, _, n in m.history)
        n = len(m.demos_saved)
        facts = [f"{n} demo{'' if n == 1 else 's'} saved", f"task {m.task_id}"]
        if watched:
            facts.append(f"policy {sum(s for _, s, _ in m.history)}/{watched} done")
        return HudView(
            mode=m.name, stage=f"one-shot: {m.phase}", round=0, rounds=0, labels=0, query_rate=None, fps=fps,
            recording=m.phase == "record" and not m.waiting_for_start and not m.paused,
            policy_version=0, training=TrainingStatus(), devices=devices, simulated=self.session.settings.simulated,
            facts=facts, policy=self.policy_name, hints="F1 help   R new demo   P pause   N / Esc quit",
        )


class WatchOnlyManager(ModeManager):
    """``python -m app --watch-only``: watch-only demos, then a summary; no training, no DAgger.

    A :class:`ModeManager` whose session plan is ``watch_only, summary``. NEXT (or the last demo)
    moves to the summary; F2-F7 do nothing, because the other modes need a policy or action
    labels that a watch-only session never has.
    """

    def __init__(self, session: Any) -> None:
        super().__init__(session, modes={"watch_only": WatchOnlyMode(session),
                                         "summary": WatchOnlySummaryMode(session)})

    def extra_help(self) -> list[tuple[str, str]]:
        return []

    def goto(self, name: str) -> None:
        return

    def hud(self, fps: float, devices: list[str]) -> HudView:
        s = self.session
        mode = self.current
        saved = len([e for e in s.state.episodes if e["kind"] == WatchOnlyMode.kind and not e.get("discarded")])
        recording = isinstance(mode, WatchOnlyMode) and mode.driver.running and not mode.waiting_for_start and not mode.paused
        return HudView(
            mode=mode.name, stage=f"watch-only: {'record' if isinstance(mode, WatchOnlyMode) else 'summary'}", round=0, rounds=0,
            labels=0, query_rate=None, fps=fps, recording=recording, policy_version=0, training=TrainingStatus(),
            devices=devices, simulated=s.settings.simulated, facts=[f"{saved} saved"],
            policy="none (no training)",
            hints="F1 help   N finish   P pause   R restart   Esc quit" if isinstance(mode, WatchOnlyMode) else "F1 help   Esc quit",
            alert=NOT_RECORDED, recording_label="REC observations only",
        )
