"""The labeller port: what the engine asks of whoever labels states, and what it tells them.

The engine meets every labeller (a scripted expert, a simulated person, the real person in the
app) through :class:`Labeler`:

- ``label(obs, ctx) -> action | None``: the action that should be taken at ``obs`` (one
  unbatched observation), or None when the labeller declines (a spent budget, a skipped query).
  ``last_seconds`` then holds what that answer cost the person (0 for a scripted expert).
- ``takes_over(obs, learner_action, ctx) -> bool``: asked before each learner-driven step;
  True means the labeller drives this step (an HG-DAgger intervention), and the caller then asks
  ``label(obs, ctx)`` with ``ctx.mode == "takeover"`` for the action to execute.
- ``begin_episode()``, ``seconds_spent``, ``labels_given``, ``source`` (stored with each label).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np

LIVE = "live"  # asked at the step, the world paused
TAKEOVER = "takeover"  # the labeller is driving (interventions, beta-mixing, demonstrations)
REVIEW = "review"  # asked later from the review queue, looking at a still frame


@dataclass(frozen=True)
class LabelContext:
    """What a labeller knows about the state it is asked about.

    episode: episode id (None while the episode is being recorded and has no id yet)
    step:    step index within the episode
    reason:  why it is asked (a QueryReason value)
    mode:    LIVE, TAKEOVER or REVIEW
    history: observations of the episode up to and including this one, oldest first
             (may be only the last few); a reaction delay reads the older ones
    """

    episode: str | None
    step: int
    reason: str
    mode: str = LIVE
    history: Sequence[Any] = ()


@runtime_checkable
class Labeler(Protocol):
    """Whoever labels states for the engine (the module docstring gives each member's meaning).

    ``ExpertLabeler`` and ``SimulatedPerson`` subclass it; the app's person conforms by shape.
    """

    source: str
    seconds_spent: float
    labels_given: int
    last_seconds: float

    def begin_episode(self) -> None: ...

    def label(self, obs: Any, ctx: LabelContext) -> Any | None: ...

    def takes_over(self, obs: Any, learner_action: Any, ctx: LabelContext) -> bool: ...


def actions_differ(a: Any, b: Any, action_space: gym.Space, tolerance: float = 0.2) -> bool:
    """True when two actions disagree: unequal for discrete spaces; for Box, the L2 distance
    exceeds ``tolerance`` times the L2 size of the box (or ``tolerance`` itself if unbounded)."""
    if isinstance(action_space, gym.spaces.Box):
        diff = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        span = action_space.high.astype(np.float64) - action_space.low.astype(np.float64)
        size = float(np.linalg.norm(span)) if np.all(np.isfinite(span)) else 1.0
        return bool(diff > tolerance * size)
    return not np.array_equal(np.asarray(a), np.asarray(b))
