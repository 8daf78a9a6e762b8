"""A simulated person: a scripted expert with a person's flaws, for tests and benchmarks.

It reacts late (answers about the state ``delay_steps`` earlier in the episode while it is
watching live or driving), sometimes gives a wrong label (probability ``noise``), costs time
(``seconds_per_label`` per query answered, ``seconds_per_takeover_step`` per step it drives,
which is cheaper because the person is already holding the controls), and has a budget (labels
and/or seconds) beyond which it declines. It is a :class:`ilcore.labelers.Labeler`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ilcore.errors import ConfigError
from ilcore.experts.base import Expert
from ilcore.labelers.base import REVIEW, TAKEOVER, LabelContext, Labeler, actions_differ


class SimulatedPerson(Labeler):
    """Scripted expert + reaction delay + label noise + time cost + budget.

    Args:
        expert: an ``ilcore.experts.Expert`` (or anything with its ``act(obs)`` and ``reset()``).
        action_space: the env's action space (wrong labels are drawn from it).
        delay_steps: reaction delay k; a live or takeover answer uses the observation k steps
            earlier in the episode (``ctx.history[-1 - k]``, the first one if the episode is
            younger). Review answers look at a still frame and have no delay.
        noise: probability that an answer is a random wrong action (Discrete: uniform over the
            other actions; Box and others: a uniform sample of the space).
        seconds_per_label: human-seconds per answered query (live or review).
        seconds_per_takeover_step: human-seconds per step driven (interventions, demos).
        budget_labels / budget_seconds: after either is spent every request is declined.
        intervene: whether it takes over when the learner's action differs from its own.
        release_after: while driving, hand control back after the learner has agreed with it on
            this many consecutive steps.
        seed: for the noise.
    """

    source = "simulated"

    def __init__(
        self,
        expert: Expert,
        action_space: gym.Space,
        *,
        delay_steps: int = 0,
        noise: float = 0.0,
        seconds_per_label: float = 1.5,
        seconds_per_takeover_step: float = 0.25,
        budget_labels: int | None = None,
        budget_seconds: float | None = None,
        intervene: bool = False,
        release_after: int = 5,
        seed: int = 0,
    ) -> None:
        if delay_steps < 0:
            raise ConfigError(f"delay_steps must be >= 0, got {delay_steps}")
        if not 0.0 <= noise <= 1.0:
            raise ConfigError(f"label noise must be a probability in [0, 1], got {noise}")
        self.expert = expert
        self.action_space = action_space
        self.delay_steps = int(delay_steps)
        self.noise = float(noise)
        self.seconds_per_label = float(seconds_per_label)
        self.seconds_per_takeover_step = float(seconds_per_takeover_step)
        self.budget_labels = budget_labels
        self.budget_seconds = budget_seconds
        self.intervene = intervene
        self.release_after = int(release_after)
        self._rng = np.random.default_rng(seed)
        self.seconds_spent = 0.0
        self.labels_given = 0
        self.last_seconds = 0.0
        self.declined = 0
        self._driving = False
        self._agreeing = 0

    # -- budget ------------------------------------------------------------------------------
    @property
    def exhausted(self) -> bool:
        """True once the label or time budget is spent."""
        if self.budget_labels is not None and self.labels_given >= self.budget_labels:
            return True
        return self.budget_seconds is not None and self.seconds_spent >= self.budget_seconds

    def restore(self, labels_given: int, seconds_spent: float) -> None:
        """Continue counting from a resumed session's totals (so the budget still holds)."""
        self.labels_given, self.seconds_spent = int(labels_given), float(seconds_spent)

    # -- Labeler -----------------------------------------------------------------------------
    def begin_episode(self) -> None:
        self.expert.reset()
        self._driving = False
        self._agreeing = 0

    def label(self, obs: Any, ctx: LabelContext) -> Any | None:
        self.last_seconds = 0.0
        if self.exhausted:
            self.declined += 1
            return None
        action = self.expert.act(self._perceived(obs, ctx))
        if self.noise > 0.0 and self._rng.random() < self.noise:
            action = self._wrong(action)
        self.last_seconds = self.seconds_per_takeover_step if ctx.mode == TAKEOVER else self.seconds_per_label
        self.seconds_spent += self.last_seconds
        self.labels_given += 1
        return action

    def takes_over(self, obs: Any, learner_action: Any, ctx: LabelContext) -> bool:
        if not self.intervene or self.exhausted:
            self._driving = False
            return False
        # What the person would do here (noise-free: deciding to grab the controls is not a label).
        wanted = self.expert.act(self._perceived(obs, ctx))
        differ = actions_differ(wanted, learner_action, self.action_space)
        if self._driving:
            self._agreeing = 0 if differ else self._agreeing + 1
            if self._agreeing >= self.release_after:
                self._driving = False
        elif differ:
            self._driving, self._agreeing = True, 0
        return self._driving

    # -- helpers -----------------------------------------------------------------------------
    def _perceived(self, obs: Any, ctx: LabelContext) -> Any:
        if ctx.mode == REVIEW or self.delay_steps == 0 or not ctx.history:
            return obs
        hist = ctx.history
        return hist[max(len(hist) - 1 - self.delay_steps, 0)]

    def _wrong(self, action: Any) -> Any:
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete) and space.n > 1:
            others = [a for a in range(int(space.start), int(space.start + space.n)) if a != int(action)]
            return int(others[int(self._rng.integers(len(others)))])
        if isinstance(space, gym.spaces.Box) and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
            return self._rng.uniform(space.low, space.high).astype(space.dtype)
        space.seed(int(self._rng.integers(2**31)))
        return space.sample()
