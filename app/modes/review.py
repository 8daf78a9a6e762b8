"""Review: deferred states, highest disagreement first, each with a short slow replay.

The person labels (an action key or the gamepad's confirm), accepts the learner's proposal,
skips, or undoes the last review label. Every label is appended to the recording's label overlay
at once (fsync), so nothing answered here is lost if the app dies.
"""

from __future__ import annotations

from typing import Any

from app.input.intents import Intent, IntentKind
from app.modes.base import Mode, ModeView, fmt_action
from ilcore.types import Query

REPLAY_FPS = 12.0  # slow motion: a clip holds one frame per env step, so this is about a quarter speed


class ReviewMode(Mode):
    name = "review"
    title = "Review"

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.index = 0
        self.cursor = 0.0  # replay position (frame index, fractional while playing)
        self.playing = True
        self.time = 0.0
        self.item_started = 0.0
        self.items: list[Query] = []
        self.done_items: list[tuple[Query, bool]] = []  # (item, labelled) for undo
        self.proposed: Any = None
        self.message = ""
        self.labelled = 0

    @property
    def queue(self) -> list[Query]:
        return self.items

    def frames(self, item: Query) -> list[Any]:
        return self.session.replays.get((item.episode, item.step), [])

    def current(self) -> Query | None:
        return self.queue[self.index] if self.index < len(self.queue) else None

    def enter(self) -> None:
        super().enter()
        self.index = 0
        self.items = self.session.review_queue()
        self.done_items = []
        self.labelled = 0
        if not self.items:
            self.finished = self.nothing_to_do = True  # nothing deferred: the plan moves straight on
        self._show()

    def _show(self) -> None:
        item = self.current()
        self.cursor = 0.0
        self.playing = True
        self.item_started = self.session.attention_time
        self.proposed = None
        if item is None:
            self.message = "the review queue is empty"
            return
        if self.session.policy is not None:
            self.proposed, _ = self.session.propose(self.session.controller.query_observation(item))

    def _label(self, action: Any) -> None:
        item = self.current()
        if item is None:
            return
        latency_ms = 1000.0 * (self.session.attention_time - self.item_started)  # pauses and idle left out
        self.session.answer_review(item, action, latency_ms=latency_ms)  # reason "review", saved at once
        self.labelled += 1
        self.done_items.append((item, True))
        self.queue.pop(self.index)
        self.message = f"labelled {item.episode} step {item.step}: {fmt_action(action, self.action_names)}"
        self._advance_or_finish()

    def _skip(self) -> None:
        item = self.current()
        if item is None:
            return
        self.done_items.append((item, False))
        self.index += 1
        self.message = "skipped"
        self._advance_or_finish()

    def _advance_or_finish(self) -> None:
        if self.current() is None:
            self.finished = True  # the manager waits: Z can still take the last answer back
            self.message = "review done"
        self._show()

    def can_undo(self) -> bool:
        return bool(self.done_items)

    def done_summary(self) -> str:
        skipped = len([1 for _, labelled in self.done_items if not labelled])
        return f"{self.labelled} labelled, {skipped} skipped (they stay queued)"

    def _undo(self) -> None:
        if not self.done_items:
            self.message = "nothing to undo"
            return
        item, labelled = self.done_items.pop()
        if labelled:
            self.session.unanswer_review(item)  # a retract in the overlay; the state is queued again
            self.labelled -= 1
            self.queue.insert(self.index, item)
        else:
            self.index = max(0, self.index - 1)
        self.finished = False
        self.message = f"undone: {item.episode} step {item.step} is back"
        self._show()

    def handle(self, intent: Intent) -> None:
        k = intent.kind
        if k is IntentKind.MOVE:
            self.held_action = intent.value
            if intent.value is not None and intent.device != "gamepad":
                self._label(intent.value)
        elif k is IntentKind.LABEL:
            self._label(intent.value if intent.value is not None else self.session.noop_action())
        elif k is IntentKind.ACCEPT and self.proposed is not None:
            self._label(self.proposed)
        elif k is IntentKind.SKIP:
            self._skip()
        elif k is IntentKind.UNDO:
            self._undo()
        elif k is IntentKind.PAUSE:
            self.playing = not self.playing
        elif k is IntentKind.STEP_BACK:
            self.playing = False
            self.cursor = max(0.0, float(int(self.cursor) - 1))
        elif k is IntentKind.STEP_FORWARD:
            self.playing = False
            item = self.current()
            if item is not None:
                self.cursor = min(float(max(0, len(self.frames(item)) - 1)), float(int(self.cursor) + 1))

    def update(self, dt: float) -> None:
        self.time += dt
        item = self.current()
        if item is None:
            return
        if self.playing and self.frames(item):
            # slow replay that holds on the queried state for a moment, then loops
            self.cursor += dt * REPLAY_FPS
            if self.cursor >= len(self.frames(item)) + 4:
                self.cursor = 0.0

    def view(self) -> ModeView:
        item = self.current()
        frame = None
        timeline = None
        clip = self.frames(item) if item is not None else []
        if clip:
            pos = min(int(self.cursor), len(clip) - 1)
            frame = clip[pos]
            timeline = (pos, len(clip))
        total = len(self.queue) + self.labelled
        prompt = detail = None
        if item is None:
            prompt, detail = "Review queue empty", "N goes on to training"
        elif not clip:
            detail = "no replay for this state (asked before a resume, or an answer taken back)"
        if item is not None:
            prompt = "What should be done at the last frame?"
            if self.message.startswith("undone"):
                detail = (detail + " - " if detail else "") + self.message
            detail = (detail + " - " if detail else "") + f"learner proposes {fmt_action(self.proposed, self.action_names, keys=True)}"
        return ModeView(
            mode=self.name,
            title=self.title,
            subtitle=f"{max(0, len(self.queue) - self.index)} waiting, {self.labelled} labelled",
            frame=frame,
            prompt=prompt,
            prompt_detail=detail if item is not None else self.message or detail,
            lines=[] if item is None else [
                ("state", f"{item.episode} step {item.step}"),
                ("round", str(item.round)),
                ("asked because", item.reason),
                ("disagreement", f"{item.priority:.3f}"),
            ],
            items_title="Queue (highest disagreement first)",
            items=[f"{q.priority:.3f}  {q.episode} step {q.step}" for q in self.queue[self.index : self.index + 8]],
            progress=None if total == 0 else self.labelled / total,
            progress_label=f"{self.labelled} of {total} labelled",
            proposed=fmt_action(self.proposed, self.action_names) if item is not None else None,
            paused=not self.playing,
            timeline=timeline,
            accent="review",
        )

    def help(self) -> list[tuple[str, str]]:
        return [("action keys", "label this state"), ("accept", ""), ("skip", ""), ("undo", ""), ("pause", "pause / play the replay"), ("step_back", ""), ("step_forward", ""), ("next", "leave review")]
