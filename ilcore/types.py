"""Plain, frozen records shared by every part of ilcore.

Shapes use T for the number of steps in an episode. Observations and actions are
"nested arrays": a numpy array for Box/Discrete/MultiDiscrete/MultiBinary spaces, a
``dict`` of nested arrays for Dict spaces and a ``tuple`` for Tuple spaces, with the
leading axis indexing time (see :mod:`ilcore.spaces`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

Nested = Any  # np.ndarray | dict[str, "Nested"] | tuple["Nested", ...]


@runtime_checkable
class Acts(Protocol):
    """Anything that picks actions: scripted experts, trained policies, test stand-ins.

    ``act(obs)`` takes ONE observation and returns one action of the env's action space;
    ``act_batch(obs_batch)`` takes observations with a leading batch axis (as a vector env gives
    them) and returns the actions with the same leading axis. Both are needed because the two
    callers differ: a person-facing loop asks about one state at a time, evaluation steps N envs
    at once. Implementations may take more keyword arguments (``Policy.act(obs, deterministic)``).

    ``ilcore.experts.Expert`` subclasses it; ``ilcore.policies.Policy`` conforms without
    subclassing (a Protocol base would give the ``nn.Module`` an ABC metaclass) and a test checks it.
    """

    def act(self, obs: Nested) -> Any: ...

    def act_batch(self, obs_batch: Nested) -> Any: ...


class Actor(enum.IntEnum):
    """Who executed an action at a step (stored as uint8)."""

    HUMAN = 0
    LEARNER = 1
    SCRIPTED = 2


class QueryReason(str, enum.Enum):
    """Why a label was asked for (stored as its string value)."""

    DEMO = "demo"  # a demonstration: every step labelled by whoever drove
    ALL = "all"  # plain DAgger: every visited state is labelled
    BETA = "beta"  # beta-querying: asked with probability beta
    UNCERTAINTY = "uncertainty"  # ensemble disagreement above the threshold
    NOVELTY = "novelty"  # far from every labelled state
    INTERVENTION = "intervention"  # the labeller took over and drove
    REVIEW = "review"  # answered later from the review queue
    INFERRED = "inferred"  # produced by a model (e.g. an inverse dynamics model)


@dataclass(frozen=True)
class EpisodeMeta:
    """Per-episode facts. ``env_kwargs`` and ``attrs`` must be JSON-serialisable."""

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    round: int = 0
    policy_version: int | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Label:
    """What the labeller says should have been done at (episode, step).

    ``action`` is one action of the session's action space (not batched).
    ``time`` is wall-clock seconds since the epoch when the label was given;
    ``latency_ms`` is how long the labeller took to answer.
    """

    episode: str
    step: int
    action: Any
    source: str  # "human", "scripted", "simulated", "idm", ...
    reason: str  # a QueryReason value
    round: int = 0
    latency_ms: float = 0.0
    time: float = 0.0

    def __post_init__(self) -> None:
        if self.step < 0:
            raise ValueError(f"Label.step must be >= 0, got {self.step}")


@dataclass(frozen=True)
class Query:
    """A state waiting for a label in the review queue; higher priority first."""

    episode: str
    step: int
    priority: float
    reason: str
    round: int = 0


@dataclass(frozen=True)
class Episode:
    """One finished episode as read back from a recording.

    observations: nested, leading axis T+1 (the reset observation plus one per step)
    actions:      nested, leading axis T, the action *executed*; None for
                  observation-only episodes
    actors:       (T,) uint8 Actor values; None for observation-only episodes
    rewards:      (T,) float64; None when unknown
    terminated / truncated: how the episode ended (kept apart; both False for an
                  episode cut short by the recorder)
    infos:        name -> (T,) array of scalar env-info values
    wall_time:    (T,) float64 seconds since the epoch at each step
    labels:       every label for this episode, oldest first (overlay included);
                  use :meth:`effective_labels` for the latest per step
    """

    id: str
    observations: Nested
    actions: Nested | None
    actors: np.ndarray | None
    rewards: np.ndarray | None
    terminated: bool
    truncated: bool
    infos: Mapping[str, np.ndarray]
    wall_time: np.ndarray
    meta: EpisodeMeta
    labels: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        t = len(self.wall_time)
        for name, arr in (("actors", self.actors), ("rewards", self.rewards)):
            if arr is not None and len(arr) != t:
                raise ValueError(f"Episode.{name} has {len(arr)} entries, expected T={t}")
        for name, arr in self.infos.items():
            if len(arr) != t:
                raise ValueError(f"Episode.infos[{name!r}] has {len(arr)} entries, expected T={t}")

    @property
    def length(self) -> int:
        return len(self.wall_time)

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards)) if self.rewards is not None else float("nan")

    def effective_labels(self) -> dict[int, Label]:
        """step -> latest label (labels are stored oldest first)."""
        out: dict[int, Label] = {}
        for lab in self.labels:
            out[lab.step] = lab
        return out
