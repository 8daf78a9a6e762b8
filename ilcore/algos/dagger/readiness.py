"""When more labels are unlikely to help: the learner's evaluated return against the person's own.

After every retraining the app's trainer and ``ilcore dagger`` already evaluate the new policy
(``--eval-episodes``, 10 full episodes by default, in the background in the app). Those returns
mean little to a person without a scale, so each is put on one: the share of the way from a
uniformly random policy's return to the return of the person's own demonstrations,

    score = (R_policy - R_random) / (R_demos - R_random),

the normalised score of the imitation-learning literature with the person as the expert. The
learner is **ready** -- more labels are unlikely to buy much -- when the last
:data:`READY_EVALUATIONS` evaluations in a row scored at least :data:`READY_SHARE`.

Measured before it was shown (docs/benchmarks.md, "When to stop"; ``label_efficiency.py
--past-bar 8``, the default gate and plain DAgger, 5 seeds each on CartPole, Acrobot, Pendulum and
LunarLander, one full demonstration): it said "ready" on 35 of 40 runs, never with the policy
below 92% of the way from random to the scripted expert, and 0-7 learner episodes after the first
policy confirmed at 95% on 32 of them. What moves it is the demonstration it is scaled by: one
below the expert's average lets it come early, one above it late or never (a Pendulum start
already upright). Neighbouring rules did worse on the same runs: one evaluation alone came before
the first confirmed policy on most LunarLander seeds; the mean of the learner's own last 3 live
episodes, free of any evaluation, fired below the bar on Pendulum and LunarLander (one episode's
return swings with its start); and the agreement on answered queries is no stop signal at all
(:mod:`ilcore.algos.dagger.agreement`).

Only demonstrations the person drove whole *and* that ended by themselves (terminated, or cut by
the env's own time limit) set the reference: an episode stopped early, or cut by a shorter
``--max-episode-steps``, is not comparable with the full-length evaluation episodes. The random
return is measured once per session (:data:`REFERENCE_EPISODES` episodes) and kept in
``<session>/policies/reference.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ilcore.fileio import write_json_atomic
from ilcore.types import Actor, Episode

__all__ = [
    "READY_EVALUATIONS", "READY_SHARE", "REFERENCE_EPISODES", "Readiness", "Reference", "demonstration_returns",
    "own_time_limit", "readiness", "recording_reference", "reference_from_json", "reference_to_json", "session_reference",
]

READY_SHARE = 0.95
"""Score (share of the way from random to the demonstrations) an evaluation must reach."""
READY_EVALUATIONS = 2
"""Consecutive latest evaluations that must reach :data:`READY_SHARE`."""
REFERENCE_EPISODES = 10
"""Random-policy episodes the reference's floor is measured on."""
REFERENCE_FILE = "reference.json"


@dataclass(frozen=True)
class Reference:
    """The scale evaluations are put on.

    demo_return:   mean return of the whole, naturally ended demonstrations
    demos:         how many there were
    random_return: mean return of a uniformly random policy (:func:`ilcore.eval.random_return`)
    """

    demo_return: float
    demos: int
    random_return: float

    def score(self, mean_return: float) -> float:
        """Share of the way from random to the demonstrations (nan when they are no better than random)."""
        gap = self.demo_return - self.random_return
        if not (math.isfinite(mean_return) and gap > 0):
            return math.nan
        return (mean_return - self.random_return) / gap


@dataclass(frozen=True)
class Readiness:
    """Where the learner stands after its latest evaluation.

    score:  the latest evaluation's score (nan without an evaluation or a reference)
    streak: latest evaluations in a row that reached ``share``
    ready:  ``streak >= needed``
    """

    score: float
    streak: int
    ready: bool

    def text(self) -> str:
        """One line for a person (the app's panel, ``ilcore dagger``'s round report)."""
        if not math.isfinite(self.score):
            return ""
        line = f"learner: {self.score:.0%} of the way from random to the demonstrations"
        if self.ready:
            return line + f", {self.streak} evaluations in a row: more labels are unlikely to help much"
        return line


def readiness(scores: Sequence[float], *, share: float = READY_SHARE, needed: int = READY_EVALUATIONS) -> Readiness:
    """The rule of this module on a session's evaluation scores, oldest first (each put on the
    reference of its time by :meth:`Reference.score`; nan: not evaluated, or no reference)."""
    if not scores:
        return Readiness(math.nan, 0, False)
    streak = 0
    for s in reversed(scores):
        if not s >= share:  # nan breaks the streak
            break
        streak += 1
    return Readiness(float(scores[-1]), streak, streak >= needed)


def own_time_limit(env_id: str, env_kwargs: dict[str, Any] | None = None) -> int | None:
    """The env's own time limit (its registration's, or ``max_episode_steps`` in ``env_kwargs``)."""
    if env_kwargs and env_kwargs.get("max_episode_steps") is not None:
        return int(env_kwargs["max_episode_steps"])
    try:
        import gymnasium

        limit = gymnasium.spec(env_id).max_episode_steps
    except Exception:  # noqa: BLE001 - an env without a registration has no known limit
        return None
    return None if limit is None else int(limit)


def demonstration_returns(episodes: Iterable[Episode], time_limit: int | None) -> list[float]:
    """Returns of the episodes the labeller drove whole that ended by themselves: terminated, or
    truncated at the env's own ``time_limit`` (None: any truncation counts as the env's)."""
    out: list[float] = []
    for ep in episodes:
        if ep.actors is None or ep.rewards is None or ep.length == 0:
            continue
        if np.any(np.asarray(ep.actors) == int(Actor.LEARNER)):
            continue
        whole = ep.terminated or (ep.truncated and (time_limit is None or ep.length >= time_limit))
        if whole and math.isfinite(ep.total_return):
            out.append(ep.total_return)
    return out


def session_reference(session_dir: str | Path, demo_returns: Sequence[float], env_id: str,
                      env_kwargs: dict[str, Any] | None = None) -> Reference | None:
    """The session's :class:`Reference` (None without a whole demonstration). The random return
    is read from ``<session>/policies/reference.json`` when it was measured for this env before,
    else measured now (:data:`REFERENCE_EPISODES` episodes) and kept there."""
    if not demo_returns:
        return None
    from ilcore.eval import random_return

    path = Path(session_dir) / "policies" / REFERENCE_FILE
    key = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {}), "episodes": REFERENCE_EPISODES}
    rand: float | None = None
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(kept, dict) and all(kept.get(k) == v for k, v in key.items()):
            value = kept.get("random_return")
            rand = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    except (OSError, ValueError):
        pass  # absent or unreadable: measured again below
    if rand is None:
        rand = random_return(env_id, REFERENCE_EPISODES, env_kwargs=env_kwargs or None)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, {**key, "random_return": rand})
        except OSError:
            pass  # only a cache: a full disk costs a measurement next time, not the score
    return Reference(float(np.mean(demo_returns)), len(demo_returns), rand)


def recording_reference(session_dir: str | Path, env_id: str, env_kwargs: dict[str, Any] | None = None) -> Reference | None:
    """:func:`session_reference` with the demonstrations read from the session's recording."""
    from ilcore.data import open_recording

    demos = demonstration_returns(open_recording(session_dir).episodes(), own_time_limit(env_id, env_kwargs))
    return session_reference(session_dir, demos, env_id, env_kwargs)


def reference_to_json(reference: Reference | None) -> dict[str, Any] | None:
    return None if reference is None else asdict(reference)


def reference_from_json(data: Any) -> Reference | None:
    """The inverse of :func:`reference_to_json` (None for anything else)."""
    if not isinstance(data, dict):
        return None
    try:
        values = [float(data[k]) for k in ("demo_return", "demos", "random_return")]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return Reference(values[0], int(values[1]), values[2])
