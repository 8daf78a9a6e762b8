"""A DAgger round: the learner drives; the gate asks the person about states it is unsure of.

Live queries pause the episode until the person answers (an action key, accept the learner's
proposal, or skip, which defers the state to review). Deferred queries are queued for review
with a short replay. Holding the takeover key lets the person drive; every step they drive is
labelled as an intervention. Labels record source, reason, round and how long the person took.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.input.intents import Intent, IntentKind
from app.modes.base import Meter, Mode, ModeView, StepClock, fmt_action
from app.modes.driver import EpisodeDriver
from app.session import FrameHistory
from ilcore.types import Actor


@dataclass
class PendingQuery:
    proposal: Any  # the controller's Proposal at this state
    asked_at: float  # mode time (s) when asked, for the person's latency

    @property
    def proposed(self) -> Any:
        return self.proposal.learner_action


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
        self.undo_stack: list[tuple[str | None, int]] = []  # (episode id or None = running episode, step)
        self.retract_after_finish: list[int] = []
        self.last_proposed: Any = None
        self.message = ""
        self.answered = 0

    def query_mode(self) -> str:
        return self.session.settings.query_mode_for(self.round)

    def enter(self) -> None:
        super().enter()
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
            self.held_device = intent.device
            # a key press answers a waiting query; a stick is confirmed with its button (LABEL)
            if self.pending is not None and intent.value is not None and intent.device != "gamepad" and not self.taking_over:
                self._answer(intent.value)
        elif k is IntentKind.LABEL and self.pending is not None:
            self._answer(intent.value if intent.value is not None else self.session.noop_action())
        elif k is IntentKind.ACCEPT and self.pending is not None and self.pending.proposed is not None:
            self._answer(self.pending.proposed)
        elif k is IntentKind.SKIP and self.pending is not None:
            self._skip()
        elif k is IntentKind.TAKEOVER:
            self.taking_over = True
            self.message = "you are driving"
        elif k is IntentKind.RELEASE:
            if self.taking_over:
                self.message = "learner driving again"
            self.taking_over = False
        elif k is IntentKind.UNDO:
            self._undo()

    def _answer(self, label: Any) -> None:
        q = self.pending
        assert q is not None
        latency_ms = 1000.0 * (self.time - q.asked_at)
        self.pending = None
        self.answered += 1
        if q.proposal.expert_drives:
            # beta-mixing drew the person to drive this step: their action runs and is the label
            self._step(label, self.session.person_actor, label=label, latency_ms=latency_ms)
        else:
            self._step(q.proposed, Actor.LEARNER, label=label, latency_ms=latency_ms)

    def _skip(self) -> None:
        q = self.pending
        assert q is not None
        self.pending = None
        if q.proposal.expert_drives:
            self._step(q.proposed, Actor.LEARNER)
        else:
            self._step(q.proposed, Actor.LEARNER, replay=True)  # unanswered: the controller queues it for review
        self.message = "skipped: queued for review"

    def _undo(self) -> None:
        if not self.undo_stack:
            self.message = "nothing to undo"
            return
        episode, step = self.undo_stack.pop()
        if episode is None:
            self.retract_after_finish.append(step)  # the recorder holds it until the episode is written
            self.session.state.labels -= 1
        else:
            self.session.retract_label(episode, step)
        self.message = f"label at step {step} undone"

    # --- stepping --------------------------------------------------------------------------
    def _step(self, action: Any, actor: Any, *, label: Any = None, latency_ms: float = 0.0, replay: bool = False) -> None:
        step, done = self.driver.step(action, actor, label=label, latency_ms=latency_ms)
        if actor == Actor.LEARNER:
            self.session.state.learner_steps += 1
        if label is not None:
            self.undo_stack.append((None, step))
        if replay:
            self.replays_this_episode[step] = self.history.clip()
        if done:
            self._end_episode()

    def _end_episode(self) -> None:
        episode_id = self.driver.finish("dagger")
        assert episode_id is not None
        self.undo_stack = [(episode_id if e is None else e, s) for e, s in self.undo_stack]
        for step in self.retract_after_finish:
            self.session.writer.flush()
            self.session.writer.retract_label(episode_id, step)
        self.retract_after_finish = []
        for step, frames in self.replays_this_episode.items():
            self.session.replays[(episode_id, step)] = frames
        state = self.session.state
        state.round_episodes += 1
        self.message = f"saved {episode_id}: return {self.driver.total_return:.0f}"
        self.session.save()
        if state.round_episodes >= self.session.settings.episodes_per_round:
            self.finished = True
            return
        self._start_episode()

    def update(self, dt: float) -> None:
        self.time += dt
        if self.taking_over:
            self.session.state.human_seconds += dt
        if self.finished or self.paused or not self.driver.running:
            return
        if self.pending is not None and not self.taking_over:
            return  # paused on a query until the person answers
        steps = self.clock.steps(dt)
        if steps:
            self._advance(steps)
            self._after_steps()

    def _advance(self, steps: int) -> None:
        for _ in range(steps):
            if self.finished or not self.driver.running:
                return
            if self.pending is not None:
                # the person took over instead of answering: their driving answers it (intervention)
                self.pending = None
                action = self.held_action if self.held_action is not None else self.session.noop_action()
                self._step(action, self.session.person_actor, label=action)
                continue
            p = self.driver.propose()
            self.last_proposed = p.learner_action
            if self.taking_over:
                action = self.held_action if self.held_action is not None else self.session.noop_action()
                self._step(action, self.session.person_actor, label=action)  # reason: intervention
                continue
            if p.expert_drives:
                self.pending = PendingQuery(p, self.time)
                return
            self.uncertainty = float(p.value) if p.value == p.value else float(p.uncertainty)
            finite = p.threshold is not None and p.threshold > float("-inf")
            self.threshold = float(p.threshold) if finite else None
            self.max_uncertainty = max(self.max_uncertainty * 0.999, self.uncertainty, (self.threshold or 0.0) * 1.5)
            if p.query:
                self.session.state.asked += 1
                if self.query_mode() == "live":
                    self.pending = PendingQuery(p, self.time)
                    return  # pause on the query until the person answers
            self._step(p.learner_action, Actor.LEARNER, replay=p.query)

    def _after_steps(self) -> None:
        if self.driver.running:
            self.history.push(self.driver.frame)  # one replay frame per displayed frame
    # --- view ------------------------------------------------------------------------------
    def view(self) -> ModeView:
        s = self.session
        prompt = detail = None
        if s.policy is None:
            prompt, detail = "No learner yet", "demonstrate (F2) and train (F3) first"
        elif self.pending is not None:
            prompt = "What should be done here?"
            detail = f"learner proposes {fmt_action(self.pending.proposed)} - action key to answer, Enter accepts, Tab skips"
        elif self.paused:
            prompt = "Paused"
        driver = "you" if self.taking_over else "learner"
        rate = s.query_rate
        ep_rows = [e for e in s.state.episodes if e["kind"] == "dagger" and e["round"] == self.round]
        return ModeView(
            mode=self.name,
            title=f"{self.title} {self.round}/{s.settings.rounds}",
            subtitle=f"episode {s.state.round_episodes + 1} of {s.settings.episodes_per_round} - {self.query_mode()} queries, gate {s.settings.gate}",
            frame=self.driver.frame,
            prompt=prompt,
            prompt_detail=detail or (self.message or None),
            lines=[
                ("step", str(self.driver.length)),
                ("return", f"{self.driver.total_return:.1f}"),
                ("policy", f"v{s.state.policy_version}"),
                ("asked", f"{s.state.asked} of {s.state.learner_steps}" + ("" if rate is None else f" ({100 * rate:.0f}%)")),
                ("review queue", str(len(s.controller.review_queue()))),
            ],
            items_title="This round",
            items=[f"{e['id']}  return {e['return']:.0f}" for e in reversed(ep_rows)][:6],
            meter=Meter("learner uncertainty", self.uncertainty, self.threshold, max(self.max_uncertainty, 1e-6)),
            proposed=fmt_action(self.pending.proposed if self.pending is not None else self.last_proposed),
            driver=driver,
            paused=self.paused or self.pending is not None,
            recording=self.driver.running,
            speed=self.clock.speed,
            accent="takeover" if self.taking_over else ("query" if self.pending is not None else "dagger"),
        )

    def help(self) -> list[tuple[str, str]]:
        return [
            ("action keys", "answer a query with that action"),
            ("accept", ""), ("skip", "skip (the state goes to the review queue)"),
            ("takeover", ""), ("undo", ""), ("pause", ""), ("slower", ""), ("faster", ""),
            ("next", "end the round early"),
        ]
