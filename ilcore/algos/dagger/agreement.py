"""How often the learner already does what the labeller answers, where the gate asked -- and the
stop signal a person reads from it.

At every answered live query the controller knows two actions: the learner's (what it was about
to do, and did, at that state) and the labeller's answer. Whether they agree
(:func:`ilcore.labelers.actions_differ`: equal for discrete actions, within 20% of the action
box's size for continuous ones) measures the learner's error exactly where it is least sure, at
no extra cost to the person. :class:`AgreementTracker` keeps those outcomes keyed by the labelled
step (undoing the label forgets it), and says :attr:`~AgreementTracker.stop_suggested` once the
learner agreed with at least ``stop_agreement`` of the last ``stop_queries`` answers: further
labels then mostly confirm what it does.

The stop rule is for discrete actions only. Measured by going on past the bar
(docs/benchmarks.md, label efficiency, ``--past-bar 3``, plain DAgger, 5 seeds): on CartPole it
fired 3 learner episodes after the policy met 95% of the expert (4 seeds; never on the fifth), on
Acrobot 1-2 after (4 seeds) and 2 before on one seed, at a return of -110 against a bar of -99. On
Pendulum (continuous torque, agreeing within a fifth of the box) it fired before the bar on 4 of 5
seeds, up to 8 episodes early, with the policy at returns of -724 to -966 against a bar of -195:
a swing-up learner agrees with the labeller on nearly every saturated-torque state and still
fails on the few that decide the task. Telling a person "more labels are unlikely to help" there
would be wrong, so for Box actions the agreement is shown and no stop is suggested.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable

import gymnasium as gym
import numpy as np

from ilcore.errors import ConfigError

__all__ = ["AgreementTracker", "STOP_AGREEMENT", "STOP_QUERIES", "stop_sentence", "suggests_stop"]

STOP_QUERIES = 50
STOP_AGREEMENT = 0.95


def suggests_stop(answers: int, agreement: float, action_space: Any = None, *, queries: int = STOP_QUERIES,
                  share: float = STOP_AGREEMENT) -> bool:
    """The stop rule: discrete actions (not a gymnasium ``Box``; None counts as discrete), at least
    ``queries`` answers, and the learner agreed with ``share`` of the last ``queries`` of them
    (``agreement``)."""
    if isinstance(action_space, gym.spaces.Box):
        return False
    return answers >= queries and agreement >= share


def stop_sentence(agreement: float, queries: int = STOP_QUERIES) -> str:
    """What the person is told once the stop rule holds."""
    return (f"the learner already did what you answered at {100 * agreement:.0f}% of your last {queries} "
            "answers: more labels are unlikely to help")


class AgreementTracker:
    """Whether the learner agreed with the labeller at each answered query, oldest first.

    window: answers :meth:`wrong_share` reads (the adaptive gate's rate)
    stop_queries / stop_agreement: :attr:`stop_suggested` once at least ``stop_queries`` answers
        are known and the learner agreed with ``stop_agreement`` of the last ``stop_queries``
    action_space: the actions compared (a ``Box`` never suggests a stop, see the module docstring)
    """

    def __init__(self, window: int = 20, *, stop_queries: int = STOP_QUERIES,
                 stop_agreement: float = STOP_AGREEMENT, action_space: Any = None) -> None:
        if window < 1 or stop_queries < 1:
            raise ConfigError(f"window and stop_queries must be >= 1, got {window} and {stop_queries}")
        if not 0.0 < stop_agreement <= 1.0:
            raise ConfigError(f"stop_agreement must be in (0, 1], got {stop_agreement}")
        self.window = int(window)
        self.stop_queries = int(stop_queries)
        self.stop_agreement = float(stop_agreement)
        self.action_space = action_space
        self._agreed: dict[Hashable, bool] = {}  # insertion order = answer order
        self._next = 0  # keys for answers recorded without one

    def record(self, agreed: bool, key: Hashable | None = None) -> None:
        """One answer; ``key`` (e.g. (episode, step)) lets :meth:`forget` undo it. A key answered
        again moves to the end (the newest answer there is the one that counts)."""
        if key is None:
            key, self._next = ("#", self._next), self._next + 1
        self._agreed.pop(key, None)
        self._agreed[key] = bool(agreed)

    def forget(self, key: Hashable) -> None:
        self._agreed.pop(key, None)

    def rekey(self, pairs: Iterable[tuple[Hashable, Hashable]]) -> None:
        """Rename keys in place, keeping the order (the running episode's steps get its id)."""
        renames = dict(pairs)
        if renames:
            self._agreed = {renames.get(k, k): v for k, v in self._agreed.items()}

    def keys(self) -> list[Hashable]:
        return list(self._agreed)

    @property
    def answers(self) -> int:
        return len(self._agreed)

    def recent(self, n: int) -> list[bool]:
        return list(self._agreed.values())[-n:] if n > 0 else []

    def wrong_share(self, prior_wrong: float = 0.0, prior_queries: float = 0.0) -> float:
        """Share of the last ``window`` answers where the learner was wrong, with a prior of
        ``prior_queries`` pseudo-answers of which ``prior_wrong`` were wrong (nan with neither)."""
        last = self.recent(self.window)
        n = len(last) + prior_queries
        if n <= 0:
            return float("nan")
        return (sum(not a for a in last) + prior_wrong * prior_queries) / n

    @property
    def agreement(self) -> float:
        """Agreement over the last ``stop_queries`` answers (nan before any)."""
        last = self.recent(self.stop_queries)
        return float(np.mean(last)) if last else float("nan")

    @property
    def stop_suggested(self) -> bool:
        return suggests_stop(self.answers, self.agreement, self.action_space, queries=self.stop_queries,
                             share=self.stop_agreement)

    def stop_sentence(self) -> str:
        """What the person is told once :attr:`stop_suggested` holds."""
        return stop_sentence(self.agreement, self.stop_queries)
