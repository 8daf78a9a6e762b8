"""A DAgger round: the learner drives; the gate asks the person about states it is unsure of.

Live queries pause the episode until the person answers (an action key, accept the learner's
proposal, or skip, which defers the state to review). Deferred queries are queued for review
with a short replay. Holding the takeover key lets the person drive; every step they drive is
labelled as an intervention. Labels record source, reason, round and how long the person took.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.input.intents import Intent, IntentKind
from app.modes.base import Meter, Mode, ModeView, StepClock, fmt_action
from app.modes.driver import EpisodeDriver
from app.session import FrameHistory
from ilcore.algos.dagger.agreement import AGREEMENT_WINDOW
from ilcore.algos.dagger.controller import Totals
from ilcore.algos.dagger.readiness import Readiness

HOLD_S = 1.0  # a finished episode's last frame stays up this long (a 0.15 s takeover episode was gone unseen)
FAIL_FAST_FRACTION = 0.25  # a learner episode shorter than this share of the demos' mean length fails fast


@dataclass
class PendingQuery:
    plan: Any  # the controller's StepPlan at this state (LIVE question, or a beta-mixed step to drive)
    asked_at: float  # mode time (s) when asked, for the person's latency

    @property
    def proposed(self) -> Any:
        return self.plan.learner_action


class DaggerMode(Mode):
    name = "dagger"
    title = "DAgger round"

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.driver = EpisodeDriver(session)
        self.clock = StepClock(session.fps, speed=1.0)
        self.round = 1
        self.paused = False
        self.taking_over = False
        self.pending: PendingQuery | None = None
        self.time = 0.0
        self.uncertainty = 0.0
        self.threshold: float | None = None
        self.max_uncertainty = 1e-6
        self.history = FrameHistory()
        self.replays_this_episode: dict[int, list[Any]] = {}
        self.undo_stack: list[tuple[str | None, int, int]] = []  # (episode id or None = running one, step, group)
        self._group = 0  # labels of one answer, or of one whole takeover, are undone together
        self.last_proposed: Any = None
        self.message = ""
        self.answered = 0
        self.waiting_for_start = False  # a person starts the round (Enter); no round runs off screen
        self.hold = 0.0  # seconds the last frame of a finished episode stays up before the next starts
        self.fail_fast_alert = ""

    def query_mode(self) -> str:
        return self.session.controller.round_query_mode

    def enter(self) -> None:
        super().enter()
        self.hold = 0.0
        self.fail_fast_alert = ""
        if self.session.policy is None:
            self.message = "no learner yet: demonstrate and train first"
            return
        if not self.driver.running:
            self._start_episode()

    def _start_episode(self) -> None:
        self.driver.start()
        self.history.clear()
        self.history.push(self.driver.frame)
        self.replays_this_episode = {}

    def exit(self) -> None:
        self.driver.discard()
        self.pending = None
        self.taking_over = False

    # --- intents ---------------------------------------------------------------------------
    def handle(self, intent: Intent) -> None:
        k = intent.kind
        if self.handle_playback(k):
            return
        if k is IntentKind.MOVE:
            self.held_action = intent.value
            # a key press answers a waiting query; a stick is confirmed with its button (LABEL)
            if self.pending is not None and intent.value is not None and intent.device != "gamepad" and not self.taking_over:
                self._answer(intent.value)
        elif k is IntentKind.LABEL and self.pending is not None:
            self._answer(intent.value if intent.value is not None else self.session.noop_action())
        elif k is IntentKind.ACCEPT and self.waiting_for_start:
            self.waiting_for_start = False
            self.message = "the learner drives"
        elif k is IntentKind.ACCEPT and self.pending is not None and self.pending.proposed is not None:
            self._answer(self.pending.proposed)
        elif k is IntentKind.SKIP and self.pending is not None:
            self._skip()
        elif k is IntentKind.TAKEOVER:
            self.taking_over = True
            self.waiting_for_start = False
            self._group += 1  # one takeover, one undo
            self.message = "you are driving"
        elif k is IntentKind.RELEASE:
            if self.taking_over:
                self.message = "learner driving again"
            self.taking_over = False
        elif k is IntentKind.UNDO:
            self._undo()

    def _answer(self, answer: Any) -> None:
        q = self.pending
        assert q is not None
        self.pending = None
        self.answered += 1
        self._group += 1
        # the person's time on it: the attention clock leaves out pauses and idle stretches
        self._run(q.plan, answer, latency_ms=1000.0 * (self.session.attention_time - q.asked_at))

    def _skip(self) -> None:
        q = self.pending
        assert q is not None
        self.pending = None
        self._run(q.plan, None)  # unanswered: the learner drives; a question goes to the review queue
        self.message = "skipped: queued for review" if q.plan.ask == "live" else "skipped: the learner drove"

    def can_undo(self) -> bool:
        return bool(self.undo_stack)

    def busy(self) -> bool:
        return super().busy() or self.pending is not None

    def _undo(self) -> None:
        if not self.undo_stack:
            self.message = "nothing to undo"
            return
        group = self.undo_stack[-1][2]
        steps = []
        while self.undo_stack and self.undo_stack[-1][2] == group:
            episode, step, _ = self.undo_stack.pop()
            self.session.retract_label(episode, step)  # the running episode's undo is written once it has an id
            steps.append(step)
        self.message = (f"label at step {steps[0]} undone" if len(steps) == 1
                        else f"takeover undone: {len(steps)} labels, steps {min(steps)}-{max(steps)}")

    # --- stepping --------------------------------------------------------------------------
    def _run(self, plan: Any, answer: Any, *, latency_ms: float = 0.0, took_over: bool = False) -> None:
        """Resolve ``plan`` with the person's answer by the engine's rule, then execute it."""
        outcome = self.session.controller.resolve(plan, answer, took_over=took_over)
        step, done = self.driver.step(outcome=outcome, latency_ms=latency_ms)
        if outcome.label is not None:
            self.undo_stack.append((None, step, self._group))
        if outcome.deferred:
            self.replays_this_episode[step] = self.history.clip()
        if done:
            self._end_episode()
        else:
            self.history.push(self.driver.frame)  # one replay frame per env step: replays run smoothly

    def _end_episode(self) -> None:
        episode_id = self.driver.finish("dagger")
        assert episode_id is not None
        self.undo_stack = [(episode_id if e is None else e, s, g) for e, s, g in self.undo_stack]
        for step, frames in self.replays_this_episode.items():
            self.session.replays[(episode_id, step)] = frames
        self.message = f"saved {episode_id}: return {self.driver.total_return:.0f}, {self.driver.length} steps"
        self.session.save()
        self._check_fail_fast(self.driver.length)
        if self.session.round_episodes >= self.session.settings.episodes_per_round:
            self.finished = True
            return
        if self.session.autopilot:
            self._start_episode()
        else:
            self.hold = HOLD_S  # the end of the episode stays on screen a moment: a short one is still seen

    def _check_fail_fast(self, length: int) -> None:
        """Episodes far shorter than the demonstrations burn rounds: say so, and offer the way out."""
        demos = [e["length"] for e in self.session.state.episodes if e["kind"] == "demo" and not e.get("discarded")]
        if self.session.autopilot or not demos or length >= FAIL_FAST_FRACTION * float(np.mean(demos)):
            return
        self.paused = True
        self.fail_fast_alert = (f"The learner fails fast: {length} steps against {np.mean(demos):.0f} in your demos. "
                                "Hold Space to take over, F2 to demonstrate more, or P to go on")

    def update(self, dt: float) -> None:
        self.time += dt
        if self.hold > 0 and not self.paused:
            self.hold -= dt
            if self.hold <= 0 and not self.finished:
                self._start_episode()
            return
        if self.paused:
            return
        self.fail_fast_alert = ""
        if self.finished or self.waiting_for_start or not self.driver.running:
            return
        if self.pending is not None and not self.taking_over:
            return  # paused on a query until the person answers
        steps = self.clock.steps(dt)
        if steps:
            self._advance(steps)

    def _held(self) -> Any:
        return self.held_action if self.held_action is not None else self.session.noop_action()

    def _advance(self, steps: int) -> None:
        step_ms = self.clock.step_ms()  # a step the person drives costs them one step of time
        for _ in range(steps):
            if self.finished or not self.driver.running:
                return
            if self.pending is not None:
                # the person took over instead of answering: their driving answers it (intervention)
                q, self.pending = self.pending, None
                self._run(q.plan, self._held(), latency_ms=step_ms, took_over=True)
                continue
            plan = self.driver.plan(takeover=self.taking_over)
            self.last_proposed = plan.learner_action
            p = plan.proposal
            if not p.expert_drives and plan.reason != "intervention":
                self.uncertainty = float(p.value) if p.value == p.value else float(p.uncertainty)
                finite = p.threshold is not None and p.threshold > float("-inf")
                self.threshold = float(p.threshold) if finite else None
                self.max_uncertainty = max(self.max_uncertainty * 0.999, self.uncertainty, (self.threshold or 0.0) * 1.5)
            if plan.ask == "takeover" and self.taking_over:
                self._run(plan, self._held(), latency_ms=step_ms)  # the person drives: their action is the label
                continue
            if plan.ask is not None:
                # a live question, or a beta-mixed step to drive; its latency runs on the attention clock
                self.pending = PendingQuery(plan, self.session.attention_time)
                return
            self._run(plan, None)

    # --- view ------------------------------------------------------------------------------
    def view(self) -> ModeView:
        s = self.session
        prompt = detail = None
        ready = s.readiness()
        if s.policy is None:
            prompt, detail = "No learner yet", "demonstrate (F2) and train (F3) first"
        elif self.pending is not None:
            prompt = "What should be done here?"
            detail = f"learner proposes {fmt_action(self.pending.proposed, self.action_names, keys=True)} - action key to answer, Enter accepts, Tab skips"
        elif self.fail_fast_alert:
            prompt, detail = "The learner fails fast", self.fail_fast_alert
        elif self.waiting_for_start and ready.ready:
            prompt = f"Round {self.round}: the learner looks ready"
            detail = (f"its last {ready.streak} evaluations reached {ready.score:.0%} of the way from random to your "
                      "demonstrations: more labels are unlikely to help much - Enter runs the round anyway, F7 ends at the summary")
        elif self.waiting_for_start:
            prompt = f"Round {self.round}: the learner will drive"
            detail = ("Enter starts it - hold Space to take over at any time; "
                      f"it asks about about {100 * s.settings.target_rate:.0f}% of the states it is unsure of")
        elif self.hold > 0:
            prompt, detail = "Episode over", self.message
        elif self.paused:
            prompt = "Paused"
        driver = "you" if self.taking_over else "learner"
        t = s.totals()
        rate = t.round_query_rate
        ep_rows = [e for e in s.state.episodes if e["kind"] == "dagger" and e["round"] == self.round]
        return ModeView(
            mode=self.name,
            title=f"{self.title} {self.round}/{s.settings.rounds}",
            subtitle=f"episode {min(s.round_episodes + 1, s.settings.episodes_per_round)} of {s.settings.episodes_per_round} - {self.query_mode()} queries, gate {s.settings.query}",
            frame=self.driver.frame,
            prompt=prompt,
            prompt_detail=detail or (self.message or None),
            lines=[
                ("step", str(self.driver.length)),
                ("return", f"{self.driver.total_return:.1f}"),
                ("policy", f"v{s.controller.policy_version}"),
                ("asked", f"{t.round_asked} of {t.round_learner_steps}" + ("" if rate is None else f" ({100 * rate:.0f}%)")),
                ("review queue", str(len(s.review_queue()))),
                ("learner agreed", agreement_text(t)),
                ("learner level", level_text(ready, any(e.get("eval_return") is not None for e in s.state.evals))),
                ("take over", "hold Space" + (" - you are driving" if self.taking_over else "")),
            ],
            items_title="This round",
            items=[f"{e['id']}  return {e['return']:.0f}" for e in reversed(ep_rows)][:6],
            meter=Meter("learner uncertainty", self.uncertainty, self.threshold, max(self.max_uncertainty, 1e-6)),
            proposed=fmt_action(self.pending.proposed if self.pending is not None else self.last_proposed, self.action_names),
            driver=driver,
            paused=self.paused or self.pending is not None,
            recording=self.driver.running,
            speed=self.clock.speed,
            accent="takeover" if self.taking_over else ("query" if self.pending is not None else "dagger"),
        )

    def done_summary(self) -> str:
        t = self.session.totals()
        rate = t.round_query_rate
        queued = len([q for q in self.session.review_queue() if q.round == self.round])
        returns = [e["return"] for e in self.session.state.episodes if e["kind"] == "dagger" and e["round"] == self.round
                   and not e.get("discarded")]
        return (f"{len(returns)} episode{'' if len(returns) == 1 else 's'} (return {np.mean(returns):.0f})"
                if returns else "no episode") + (
            f", asked {t.round_asked} of {t.round_learner_steps} learner states"
            + ("" if rate is None else f" ({100 * rate:.0f}%)") + f", {queued} deferred to review")

    def help(self) -> list[tuple[str, str]]:
        return [
            ("action keys", "answer a query with that action"),
            ("accept", ""), ("skip", "skip (the state goes to the review queue)"),
            ("takeover", ""), ("undo", ""), ("pause", ""), ("slower", ""), ("faster", ""),
            ("accept", "start the round (Enter) when it waits"),
            ("next", "end the round early"),
        ]


def level_text(r: Readiness, evaluated: bool) -> str:
    """The last evaluation on the scale random = 0%, the person's demonstrations = 100% (the side
    panel's line; short, it shares the panel's width with its name)."""
    if not math.isfinite(r.score):
        return "- (no whole demo)" if evaluated else "-"
    return f"{r.score:.0%} of your demos" + (" - ready" if r.ready else "")


def agreement_text(t: Totals) -> str:
    """How often the learner already did what the person answered (the side panel's line)."""
    if t.answers == 0:
        return "- (no answers yet)"
    return f"{100 * t.agreement:.0f}% of your last {min(t.answers, AGREEMENT_WINDOW)}"
