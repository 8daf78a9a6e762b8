"""A scripted expert as a labeller."""

from __future__ import annotations

from typing import Any

from ilcore.experts.base import Expert
from ilcore.labelers.base import LabelContext, Labeler


class ExpertLabeler(Labeler):
    """A scripted expert as a labeller: never declines, costs ``seconds_per_label`` (default 0).

    The expert is an ``ilcore.experts.Expert`` (or anything with its ``act(obs)`` and
    ``reset()``); bind experts that read simulator state before handing them over.
    """

    def __init__(self, expert: Expert, *, source: str = "scripted", seconds_per_label: float = 0.0) -> None:
        self.expert = expert
        self.source = source
        self.seconds_per_label = float(seconds_per_label)
        self.seconds_spent = 0.0
        self.labels_given = 0
        self.last_seconds = 0.0

    def begin_episode(self) -> None:
        self.expert.reset()

    def label(self, obs: Any, ctx: LabelContext) -> Any | None:
        self.labels_given += 1
        self.last_seconds = self.seconds_per_label
        self.seconds_spent += self.last_seconds
        return self.expert.act(obs)

    def takes_over(self, obs: Any, learner_action: Any, ctx: LabelContext) -> bool:
        return False

    def restore(self, labels_given: int, seconds_spent: float) -> None:
        """Continue counting from a resumed session's totals."""
        self.labels_given, self.seconds_spent = int(labels_given), float(seconds_spent)
