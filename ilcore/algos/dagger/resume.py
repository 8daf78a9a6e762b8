"""One resume for every DAgger session: the round, the totals, the review queue and the policy,
rebuilt from the session folder alone (its episodes, its label overlay and the controller's
``dagger_state.json``). ``ilcore dagger --resume`` and ``python -m app --resume`` both call
:func:`resume_controller`, so after a resume the app shows what ``ilcore info --json`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ilcore.algos.dagger.controller import (
    INFO_QUERY,
    INFO_UNCERTAINTY,
    POLICIES_DIR,
    STATE_FILE,
    DaggerController,
    SessionSink,
    read_controller_state,
)
from ilcore.algos.dagger.gates import Gate
from ilcore.data import open_recording
from ilcore.errors import ConfigError
from ilcore.labelers.base import actions_differ
from ilcore.spaces import index
from ilcore.types import Actor, Query, QueryReason


@dataclass(frozen=True)
class SessionScan:
    """What a session's recordings say about a DAgger run.

    episodes: finished episodes (discarded ones excluded)
    episodes_per_round / episode_round: round -> finished episodes; episode id -> its round
    label_latencies: (episode, step) -> the labeller's seconds for each active label there, oldest
        first (one key per labelled step: ``labels`` is what ``ilcore info`` counts)
    learner_steps / asked: round -> learner-driven steps, and how many of them the gate asked about
    learner_obs: round -> observations where the learner drove (gate calibration)
    pending: queried learner steps that have no label yet (the review queue)
    answers: (episode, step) -> whether the learner's executed action matched the effective label,
        for every queried learner step answered live (in recording order; the controller's
        agreement, :mod:`ilcore.algos.dagger.agreement`)
    """

    episodes: int
    episodes_per_round: dict[int, int]
    episode_round: dict[str, int]
    label_latencies: dict[tuple[str, int], list[float]]
    learner_steps: dict[int, int]
    asked: dict[int, int]
    learner_obs: dict[int, list[Any]] = field(repr=False)
    pending: list[Query]
    asked_steps: dict[tuple[str, int], tuple[float, str, int]] = field(default_factory=dict, repr=False)
    answers: dict[tuple[str, int], bool] = field(default_factory=dict, repr=False)

    @property
    def labels(self) -> int:
        return len(self.label_latencies)

    @property
    def human_seconds(self) -> float:
        return float(sum(sum(v) for v in self.label_latencies.values()))

    @property
    def last_round(self) -> int | None:
        return max(self.episodes_per_round) if self.episodes_per_round else None

    def query_rate(self, round: int) -> float | None:
        """asked / learner-driven steps of ``round`` (None when the learner never drove)."""
        n = self.learner_steps.get(round, 0)
        return None if n == 0 else self.asked.get(round, 0) / n

    def to_json(self) -> dict[str, Any]:
        """The counts ``ilcore info --json`` reports under ``"dagger"``."""
        rounds = sorted(set(self.episodes_per_round) | set(self.learner_steps))
        return {
            "labels": self.labels,
            "human_seconds": round(self.human_seconds, 3),
            "queued": len(self.pending),
            "rounds": [
                {"round": r, "episodes": self.episodes_per_round.get(r, 0), "learner_steps": self.learner_steps.get(r, 0),
                 "asked": self.asked.get(r, 0), "query_rate": self.query_rate(r)}
                for r in rounds
            ],
        }


def scan_session(path: str | Path | Any, *, observations: bool = True) -> SessionScan:
    """Read a session folder (or an open Recording) and rebuild the controller's totals
    (``observations=False``: leave ``learner_obs`` empty, for counting only)."""
    rec: Any = path if hasattr(path, "episodes") else open_recording(path)
    counts: dict[int, int] = {}
    episode_round: dict[str, int] = {}
    latencies: dict[tuple[str, int], list[float]] = {}
    learner_steps: dict[int, int] = {}
    asked_by_round: dict[int, int] = {}
    learner_obs: dict[int, list[Any]] = {}
    pending: list[Query] = []
    asked_steps: dict[tuple[str, int], tuple[float, str, int]] = {}
    answers: dict[tuple[str, int], bool] = {}
    for ep in rec.episodes():
        r = int(ep.meta.round)
        counts[r] = counts.get(r, 0) + 1
        episode_round[ep.id] = r
        effective: dict[int, Any] = {}
        for lab in ep.labels:  # active labels, oldest first
            latencies.setdefault((ep.id, int(lab.step)), []).append(float(lab.latency_ms) / 1000.0)
            effective[int(lab.step)] = lab
        if ep.actors is None:
            continue
        asked = np.asarray(ep.infos.get(INFO_QUERY, np.zeros(ep.length)))
        unc = np.asarray(ep.infos.get(INFO_UNCERTAINTY, np.zeros(ep.length)))
        learner = np.flatnonzero(ep.actors == int(Actor.LEARNER))
        learner_steps[r] = learner_steps.get(r, 0) + len(learner)
        asked_by_round[r] = asked_by_round.get(r, 0) + int(np.sum(asked[learner] > 0))
        for t in learner:
            if observations:
                learner_obs.setdefault(r, []).append(index(ep.observations, int(t)))
            if asked[t] > 0:
                prio = float(unc[t]) if np.isfinite(unc[t]) else 0.0
                asked_steps[(ep.id, int(t))] = (prio, QueryReason.UNCERTAINTY.value, r)
                lab = effective.get(int(t))
                if lab is None:
                    pending.append(Query(ep.id, int(t), prio, QueryReason.UNCERTAINTY.value, r))
                elif lab.reason != QueryReason.REVIEW.value and ep.actions is not None:
                    answers[(ep.id, int(t))] = not actions_differ(index(ep.actions, int(t)), lab.action,
                                                                  rec.action_space)
    return SessionScan(sum(counts.values()), counts, episode_round, latencies, learner_steps, asked_by_round,
                       learner_obs, pending, asked_steps, answers)


@dataclass(frozen=True)
class Recovered:
    """What a resume found, for the person to read (the app shows it; the CLI prints it).

    round / episodes_in_round: where the session goes on
    policy_path: the installed policy's folder (None: none saved yet)
    """

    round: int
    episodes_in_round: int
    episodes: int
    labels: int
    human_seconds: float
    queued: int
    policy_path: Path | None

    def sentence(self) -> str:
        policy = f"policy {self.policy_path.name}" if self.policy_path else "no policy yet"
        return (f"resumed round {self.round} ({self.episodes_in_round} episodes in it): {self.episodes} episodes, "
                f"{self.labels} labels, {self.human_seconds:.0f} human-seconds, {self.queued} states queued for review, "
                f"{policy}")


def resume_controller(env_id: str, writer: SessionSink, gate: Gate, **kwargs: Any) -> tuple[DaggerController, Recovered]:
    """A :class:`DaggerController` for an existing session folder (``writer`` opened with
    ``resume=True``), at the round ``dagger_state.json`` names (else the last round recorded),
    with its totals and review queue rebuilt from the recordings and the saved policy (and its
    calibration states) installed when there is one. ``kwargs`` go to the controller."""
    folder = Path(writer.path)
    state = read_controller_state(folder)
    scan = scan_session(folder)
    rnd = int(state.get("round", scan.last_round or 0))
    ctrl = DaggerController(
        env_id, writer, gate, round=rnd, episodes_in_round=scan.episodes_per_round.get(rnd, 0),
        queue=scan.pending, scan=scan, **kwargs,
    )
    policy_path: Path | None = None
    if state.get("policy"):
        candidate = (folder / state["policy"]).resolve()
        if not candidate.is_relative_to((folder / POLICIES_DIR).resolve()):
            raise ConfigError(f"{folder / STATE_FILE} names a policy outside {folder / POLICIES_DIR}; "
                              "move the file aside to resume without it")
        if candidate.is_dir():
            policy_path = candidate
            ctrl._last_round_obs = list(scan.learner_obs.get(rnd - 1, []))
            ctrl.install_saved(candidate)
    t = ctrl.totals()
    return ctrl, Recovered(rnd, ctrl.episodes_in_round, t.episodes, t.labels, t.human_seconds,
                           len(ctrl.review_queue()), policy_path)
