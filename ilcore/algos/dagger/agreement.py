"""How often the learner already does what the labeller answers, where the gate asked.

At every answered live query the controller knows two actions: the learner's (what it was about
to do, and did, at that state) and the labeller's answer. Whether they agree
(:func:`ilcore.labelers.actions_differ`: equal for discrete actions, within 20% of the action
box's size for continuous ones) measures the learner's error exactly where it is least sure, at
no extra cost to the person. :class:`AgreementTracker` keeps those outcomes keyed by the labelled
step (undoing the label forgets it). The adaptive gate sets its rate from the recent share of
disagreements; the app and ``ilcore dagger`` show the agreement over the last 50 answers.

**It is not a stop signal.** The candidate rule "the learner agreed with >= 95% of the last 50
answers: more labels are unlikely to help" was measured by going on past the bar
(docs/benchmarks.md, label efficiency, ``--past-bar 3``, plain DAgger, 5 seeds each). It fired
after the policy met 95% of the expert only on CartPole (3 learner episodes after, 4 seeds). On
LunarLander it fired before the bar on all 5 seeds, up to 13 episodes early, at returns of 26 to
237 against a bar of 258; on Pendulum on 4 of 5 seeds, up to 8 episodes early, at returns down
to -966 against -195; on Acrobot on 1 of 5. A learner that matches the labeller on 95% of the
states it visits still fails where the other 5% decide the task (the compounding DAgger bounds),
so agreement says how often answers confirm the learner, not that the policy is good. With the
default uncertainty gate it hardly ever reaches 95% at all (it asks where the learner is least
sure). The stop signal the person is shown reads the evaluated returns instead:
:mod:`ilcore.algos.dagger.readiness`.
"""

from __future__ import annotations

from typing import Hashable, Iterable

import numpy as np

from ilcore.errors import ConfigError

__all__ = ["AGREEMENT_WINDOW", "AgreementTracker"]

AGREEMENT_WINDOW = 50
"""Answers the shown agreement is computed over."""


class AgreementTracker:
    """Whether the learner agreed with the labeller at each answered query, oldest first.

    window: answers :meth:`wrong_share` reads (the adaptive gate's rate)
    agreement_window: answers :attr:`agreement` reads (what the person is shown)
    """

    def __init__(self, window: int = 20, *, agreement_window: int = AGREEMENT_WINDOW) -> None:
        if window < 1 or agreement_window < 1:
            raise ConfigError(f"window and agreement_window must be >= 1, got {window} and {agreement_window}")
        self.window = int(window)
        self.agreement_window = int(agreement_window)
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
        """Agreement over the last ``agreement_window`` answers (nan before any)."""
        last = self.recent(self.agreement_window)
        return float(np.mean(last)) if last else float("nan")
