"""Intents: what a person means, independent of the device that said it.

Devices turn raw pygame events into these; modes handle them. Nothing here imports pygame,
so modes and the session can be driven by tests or a simulated person without a window.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class IntentKind(str, enum.Enum):
    MOVE = "move"  # value: the action the person is holding now (None = nothing held)
    TAKEOVER = "takeover"  # start driving in place of the learner (held)
    RELEASE = "release"  # stop driving; the learner resumes
    LABEL = "label"  # value: an action given as the answer to a query / review item
    ACCEPT = "accept"  # accept the learner's proposed action as the label
    SKIP = "skip"  # leave this query unlabelled
    UNDO = "undo"  # retract the last label given
    PAUSE = "pause"  # toggle pause
    SLOWER = "slower"
    FASTER = "faster"
    RESTART = "restart"  # restart the current episode (the unfinished one is dropped)
    DISCARD = "discard"  # discard the last finished episode
    STEP_BACK = "step_back"  # review: one frame back in the replay
    STEP_FORWARD = "step_forward"
    NEXT = "next"  # finish this mode and go to the next one in the session plan
    GOTO = "goto"  # value: a mode name ("demo", "train", "dagger", "review", "watch", "summary")
    HELP = "help"  # toggle the help overlay
    KEEP_POLICY = "keep_policy"  # keep the previous policy when the new one evaluates worse
    QUIT = "quit"


@dataclass(frozen=True)
class Intent:
    kind: IntentKind
    value: Any = None
    device: str = "keyboard"  # which device said it, for the HUD and for counting events

    def __repr__(self) -> str:  # short, for logs and test failures
        return f"Intent({self.kind.value}{'' if self.value is None else ', ' + repr(self.value)})"
