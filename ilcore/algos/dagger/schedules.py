"""Per-round schedules for beta (who drives, who gets asked).

A schedule maps a round index ``k >= 0`` to a value in [0, 1]. Round 0 is the round of initial
demonstrations; the learner first drives in round 1. Schedules are frozen dataclasses so a run's
configuration can be written to JSON and rebuilt exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ilcore.errors import ConfigError


@runtime_checkable
class Schedule(Protocol):
    """A value per round: ``schedule(k) -> float``."""

    def __call__(self, round: int) -> float: ...


@dataclass(frozen=True)
class Constant:
    """The same value every round."""

    value: float

    def __call__(self, round: int) -> float:
        return float(self.value)


@dataclass(frozen=True)
class Linear:
    """Goes in a straight line from ``start`` (round 0) to ``end`` (round ``rounds``), then stays.

    ``value(k) = start + (end - start) * min(k / rounds, 1)``.
    """

    start: float
    end: float
    rounds: int

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"a linear schedule needs rounds >= 1, got {self.rounds}")

    def __call__(self, round: int) -> float:
        frac = min(max(round, 0) / self.rounds, 1.0)
        return float(self.start + (self.end - self.start) * frac)


@dataclass(frozen=True)
class Exponential:
    """Decays geometrically: ``value(k) = max(floor, start * decay**k)`` (Ross 2011 uses p**k)."""

    start: float
    decay: float
    floor: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"an exponential schedule needs 0 <= decay <= 1, got {self.decay}")

    def __call__(self, round: int) -> float:
        return float(max(self.floor, self.start * math.pow(self.decay, max(round, 0))))


def parse_schedule(text: str) -> Schedule:
    """Build a schedule from its command-line form.

    ``"0.3"`` or ``"constant:0.3"``; ``"linear:START,END,ROUNDS"``; ``"exp:START,DECAY[,FLOOR]"``.
    """
    kind, _, args = text.partition(":")
    if not args:
        kind, args = "constant", text
    try:
        nums = [float(x) for x in args.split(",")]
        if kind in ("constant", "const") and len(nums) == 1:
            sched: Schedule = Constant(nums[0])
        elif kind == "linear" and len(nums) == 3:
            sched = Linear(nums[0], nums[1], int(nums[2]))
        elif kind in ("exp", "exponential") and len(nums) in (2, 3):
            sched = Exponential(*nums)
        else:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"cannot read schedule {text!r}; use 0.3, constant:0.3, linear:1,0,10 or exp:1,0.5"
        ) from None
    for k in (0, 1, 10):
        if not 0.0 <= sched(k) <= 1.0:
            raise ConfigError(f"schedule {text!r} leaves [0, 1] (value {sched(k):g} at round {k})")
    return sched

