"""The step-wise DAgger controller: the caller owns the clock and drives it one step at a time.

One round of use::

    ctrl.begin_episode(obs, seed=s)
    while not done:
        plan = ctrl.plan_step(obs, takeover=...)  # who drives, who is asked, why (the one rule)
        answer = labeller.label(obs, ...) if plan.ask else None   # a person may take their time
        out = ctrl.resolve(plan, answer)          # what runs, who acted, which label
        obs, r, term, trunc, info = env.step(out.action)
        ctrl.commit_outcome(out, r, term, trunc, obs, latency_ms=...)
    ctrl.end_episode()
    ...more episodes; answer ctrl.review_queue() items with ctrl.answer(q, action)...
    result = ctrl.end_round()                     # retrain on every label, recalibrate, next round

Nothing here pumps events, sleeps or touches a screen: the pygame app and the blocking
:func:`ilcore.algos.dagger.run.run_dagger` drive the same object. Every step and label goes to
the :class:`~ilcore.data.SessionWriter` as it happens, and the per-step gate outcome is stored in
the step's info (``dagger_uncertainty``, ``dagger_query``, ``dagger_threshold``), so a killed
session's state (round, review queue, label totals) is rebuilt from its recordings alone
(:func:`ilcore.algos.dagger.resume.resume_controller`).

Round 0 is the demonstration round: with no policy yet, the labeller drives and every step is
a label with reason "demo". The learner first drives in round 1.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from ilcore import spaces as sp
from ilcore.algos.dagger.agreement import AgreementTracker
from ilcore.algos.dagger.gates import Gate, GateDecision, NoveltyGate, flatten_obs
from ilcore.algos.dagger.readiness import Reference, demonstration_returns, own_time_limit, session_reference
from ilcore.algos.dagger.schedules import Constant, Schedule
from ilcore.data import load_transitions, open_recording
from ilcore.errors import ConfigError
from ilcore.eval import evaluate, make_env
from ilcore.fileio import write_bytes_atomic, write_json_atomic
from ilcore.labelers.base import LIVE, TAKEOVER, actions_differ
from ilcore.types import Actor, Label, Query, QueryReason

# ilcore.policies and ilcore.algos.bc (torch) are imported inside the functions that load or train a
# policy: the app's window process and `ilcore --help` import this module and must not load torch.

# Keys this controller adds to each step's info (scalars, so they are stored per step).
INFO_UNCERTAINTY = "dagger_uncertainty"
INFO_QUERY = "dagger_query"
INFO_THRESHOLD = "dagger_threshold"

STATE_FILE = "dagger_state.json"  # the controller's round and installed policy, in the session folder
POLICIES_DIR = "policies"  # each trained policy: <session>/policies/v<NNN> (config, weights, calibration states)
CALIBRATION_FILE = "calibration.npz"
QUERY_MODES = ("live", "deferred", "mixed")


@runtime_checkable
class EpisodeSink(Protocol):
    """What the controller calls on the recorder of its running episode
    (:class:`ilcore.data.writer.EpisodeRecorder`; the tests' in-memory fake)."""

    def step(self, action: Any, actor: Actor | int, reward: float, terminated: bool, truncated: bool,
             next_obs: Any, info: Mapping[str, Any] | None = None) -> int: ...

    def label(self, step: int, action: Any, *, source: str, reason: str, round: int = 0,
              latency_ms: float = 0.0) -> None: ...

    def finish(self) -> str: ...

    def discard(self) -> None: ...


@runtime_checkable
class SessionSink(Protocol):
    """The controller's writer port: what it calls to record steps and labels as they happen
    (:class:`ilcore.data.SessionWriter`; the tests' in-memory fake).

    ``path`` is the session folder: the controller keeps its state file there, retrains on it and
    reads review states back from it (a path that is not a folder, as in-memory fakes give, skips
    the state file). A writer that also has an ``observation_space`` (the real one) is read back
    for labelled states; fakes without one skip that.
    """

    @property
    def path(self) -> str | os.PathLike[str]: ...

    def begin_episode(self, first_obs: Any, *, seed: int | None = None, round: int = 0,
                      policy_version: int | None = None, attrs: Mapping[str, Any] | None = None) -> EpisodeSink: ...

    def add_label(self, label: Label) -> None: ...

    def retract_label(self, episode: str, step: int) -> None: ...

    def discard_episode(self, episode_id: str) -> None: ...

    def flush(self) -> None: ...


class EnsembleOutput(Protocol):
    """The part of :class:`ilcore.policies.PolicyOutput` the controller reads: per state of a
    batch, the ensemble's action ``(N, ...)`` and its members' disagreement ``(N,)``."""

    @property
    def action(self) -> Any: ...

    @property
    def uncertainty(self) -> Any: ...


@runtime_checkable
class Learner(Protocol):
    """The controller's policy port: an ensemble that proposes actions and says how much its
    members disagree (:class:`ilcore.policies.Policy`; the tests' fake).

    A learner may also have an int ``version`` (stamped on install, stored with each episode) and
    ``eval()`` (called on install); the controller uses them when present.
    """

    def predict_ensemble(self, obs_batch: Any) -> EnsembleOutput: ...


TrainFn = Callable[[Sequence[Path], Learner | None], Learner]
"""(recording paths, previous policy or None) -> new policy; see :func:`retrain_policy`."""


@dataclass(frozen=True)
class Proposal:
    """What the controller suggests at one state.

    learner_action: the learner's action (one action of the env's space); None in round 0
    uncertainty:    the learner ensemble's disagreement at this state (nan in round 0)
    query:          the gate asks for a label here (only ever True on learner-driven states)
    reason:         a QueryReason value when ``query`` (or "demo" when ``expert_drives``)
    threshold:      what the gate compared against (None when not applicable)
    expert_drives:  beta-mixing drew the labeller to drive this step (always True in round 0);
                    the caller then executes the labeller's action and commits it as the label
    value:          the gate's signal at this state
    """

    learner_action: Any
    uncertainty: float
    query: bool
    reason: str | None
    threshold: float | None
    expert_drives: bool
    value: float = math.nan


@dataclass(frozen=True)
class StepPlan:
    """The one rule for a step: who drives it, whether the labeller must answer first, and why.

    proposal: the controller's :class:`Proposal` at this state
    ask:      None: nobody is asked (the learner drives; a gate query, if any, is deferred to
              review); ``TAKEOVER``: the labeller drives this step (a demonstration, a beta-mixed
              step or an intervention) and its answer is the action executed and the label;
              ``LIVE``: the labeller is asked now; the learner's action is executed either way
    reason:   the QueryReason value a label given here is stored with
    """

    proposal: Proposal
    ask: str | None
    reason: str | None

    @property
    def learner_action(self) -> Any:
        return self.proposal.learner_action

    @property
    def deferred(self) -> bool:
        """The gate asked, but the question goes to the review queue instead of being asked now."""
        return self.ask is None and self.proposal.query


@dataclass(frozen=True)
class StepOutcome:
    """What to execute and record for a planned step (from :meth:`DaggerController.resolve`).

    deferred: the gate asked and no label came: the state goes to the review queue
    """

    action: Any
    actor: Actor
    label: Any
    reason: str | None
    deferred: bool = False


@dataclass(frozen=True)
class RoundResult:
    """Totals for one finished round (``round`` is the round that just ended).

    query_rate: asked / learner-driven steps of the round (nan if the learner never drove) --
        the one definition of the query rate, used by the CLI, the app's HUD and summary.json
    label_rate: labels given / steps visited in the round (every kind of label)
    threshold:  the gate's threshold after recalibration (None for gates without one)
    """

    round: int
    episodes: int
    steps: int
    learner_steps: int
    queries: int
    labels: int
    human_seconds: float
    query_rate: float
    label_rate: float
    threshold: float | None
    policy_version: int | None
    trained: bool


@dataclass(frozen=True)
class Totals:
    """Progress counters, owned by the controller and rebuilt from the session folder on resume.

    labels:        effective labels (one per labelled step: what ``ilcore info`` counts)
    human_seconds: the labeller's time over every active label (retracted ones excluded)
    round_*:       the running round only; ``round_query_rate`` = asked / learner-driven steps
    answers:       live queries answered (the agreement's sample; review answers are not counted)
    agreement:     share of the last 50 answered live queries where the learner's action already
                   matched the answer (nan before any; :mod:`ilcore.algos.dagger.agreement`, which
                   says why it is not a stop signal)
    """

    episodes: int
    labels: int
    human_seconds: float
    round: int
    round_episodes: int
    round_learner_steps: int
    round_asked: int
    answers: int = 0
    agreement: float = math.nan

    @property
    def round_query_rate(self) -> float | None:
        return None if self.round_learner_steps == 0 else self.round_asked / self.round_learner_steps


@dataclass(frozen=True)
class EpisodeSummary:
    """One finished episode, as :meth:`DaggerController.end_episode` saw it.

    episode:         its id in the session
    round:           the round it was recorded in (0: demonstrations)
    steps:           steps recorded
    total_return:    the sum of its rewards
    labeller_steps:  steps the labeller drove (demonstration, beta-mixed or taken-over steps);
                     0 means the learner drove it all, so its return is the learner's own
    policy_version:  the learner that proposed its actions (None in round 0)
    """

    episode: str
    round: int
    steps: int
    total_return: float
    labeller_steps: int
    policy_version: int | None

    @property
    def learner_only(self) -> bool:
        return self.labeller_steps == 0 and self.policy_version is not None


@dataclass
class _EpisodeState:
    recorder: EpisodeSink
    rng: np.random.Generator
    obs: Any
    history: list[Any]
    step: int = 0
    total_return: float = 0.0
    labeller_steps: int = 0
    proposal: Proposal | None = None
    deferred: list[tuple[int, float, str]] = field(default_factory=list)  # (step, priority, reason)
    deferred_obs: dict[int, Any] = field(default_factory=dict)
    retracts: list[int] = field(default_factory=list)  # label undos of this episode, applied once it has an id


def query_mode_for(mode: str, round: int, rounds: int | None) -> str:
    """"live" or "deferred" for a round: ``mode`` is live, deferred, or mixed (live, then the last
    of ``rounds`` rounds deferred, so its questions are answered in one review)."""
    if mode not in QUERY_MODES:
        raise ConfigError(f"query mode must be one of {', '.join(QUERY_MODES)}, not {mode!r}")
    if mode == "mixed":
        return "deferred" if rounds is not None and round >= rounds else "live"
    return mode


class DaggerController:
    """DAgger with a person as the expert, driven step by step.

    Args:
        env_id: the env being recorded (stored with each episode).
        writer: an open ``ilcore.data.SessionWriter`` (a :class:`SessionSink`); every step and
            label is written through it.
        gate: decides which learner-driven states to ask about (``ilcore.algos.dagger.gates``).
        policy: the current learner (an ``ilcore.policies.Policy``, or any :class:`Learner`);
            None before the first training (round 0 = demonstrations).
        beta_mix: probability per step that the labeller drives (Ross 2011 beta-mixing), per
            round; independent of the gate (beta-querying is :class:`BetaGate`).
        retrain: options for :func:`retrain_policy` (ignored when ``train_fn`` is given).
        train_fn: replaces :func:`retrain_policy`: ``train_fn(paths, previous_policy) -> policy``.
        label_source: stored as the ``source`` of the labels committed here ("human",
            "scripted", "simulated", ...).
        labeller_actor: the Actor stored for steps the labeller drives.
        query_mode: "live" (ask at the step), "deferred" (queue for review) or "mixed" (live,
            the last of ``rounds`` deferred); see :func:`query_mode_for`.
        rounds: the planned number of learner rounds (only "mixed" reads it).
        round: the round to start in (resume); see :func:`resume_controller`.
        seed: seeds the per-episode random draws (beta-mixing, beta-querying), which depend only on
            (seed, round, episode number in the round), so a resumed run draws the same way.
        defer_unanswered: a learner-driven step the gate asked about, committed without a label,
            goes to the review queue (priority = disagreement).
        queue: review-queue items to start with (resume).
        episodes_in_round: episodes of ``round`` already recorded (resume; keeps random draws aligned).
        calibrate_fn: ``calibrate_fn(policy) -> observations`` the new policy would visit (a silent
            rollout, :func:`calibration_states`); every installed policy calibrates the gate on
            them before the round's first question. Without it, a policy installed with no
            ``calibration_obs`` is calibrated on the last round's states re-scored.
        totals: counters to start from (resume; :class:`SessionScan`).
    """

    def __init__(
        self,
        env_id: str,
        writer: SessionSink,
        gate: Gate,
        *,
        policy: Learner | None = None,
        beta_mix: Schedule = Constant(0.0),
        retrain: Any = None,
        train_fn: TrainFn | None = None,
        label_source: str = "human",
        labeller_actor: Actor | int = Actor.HUMAN,
        query_mode: str = "live",
        rounds: int | None = None,
        round: int = 0,
        seed: int = 0,
        defer_unanswered: bool = True,
        queue: Sequence[Query] = (),
        episodes_in_round: int = 0,
        calibrate_fn: Callable[[Learner], Sequence[Any]] | None = None,
        scan: Any = None,
    ) -> None:
        query_mode_for(query_mode, 0, rounds)  # refuses an unknown mode now, not at the first step
        self.env_id = env_id
        self.writer = writer
        self.gate = gate
        self.policy = policy
        self.beta_mix = beta_mix
        self.retrain_config = retrain
        self.train_fn = train_fn
        self.label_source = label_source
        self.labeller_actor = Actor(int(labeller_actor))
        self.query_mode = query_mode
        self.rounds = rounds
        self.round = int(round)
        self.seed = int(seed)
        self.defer_unanswered = defer_unanswered
        self.calibrate_fn = calibrate_fn
        self.policy_path: Path | None = None  # the installed policy's folder, when it was loaded from one
        self._queue: dict[tuple[str, int], Query] = {(q.episode, q.step): q for q in queue}
        self._query_obs: dict[tuple[str, int], Any] = {}
        self._episode: _EpisodeState | None = None
        self._learner_obs: list[Any] = []  # learner-driven states of this round (gate calibration)
        self._learner_unc: list[float] = []
        self._last_round_obs: list[Any] = []
        # (episode id, step) -> latencies (s) of the active labels there, oldest first; the
        # running episode's steps are keyed (None, step) until it has an id.
        self._labelled: dict[tuple[str | None, int], list[float]] = {}
        self._seconds = 0.0  # the sum of every latency in _labelled, kept as they change (the HUD reads it per frame)
        # (episode id or None, step) -> (priority, reason, round) of every learner step the gate asked
        # about: undoing its last label puts it back in the review queue (as the recording says)
        self._asked: dict[tuple[str | None, int], tuple[float, str, int]] = {}
        self._episode_count = 0
        self._episode_round: dict[str, int] = {}
        # Whether the learner already did what the labeller answered, per answered live query
        # (compared in the action space the writer records, when it has one).
        self._action_space = getattr(writer, "action_space", None)
        self.agreement = AgreementTracker()
        self.last_episode: EpisodeSummary | None = None  # the last episode ended (not discarded)
        self._reset_round_totals()
        self._episodes = int(episodes_in_round)
        if scan is not None:
            self._labelled = {k: list(v) for k, v in scan.label_latencies.items()}
            self._seconds = scan.human_seconds
            self._asked = dict(scan.asked_steps)
            self._episode_count = int(scan.episodes)
            self._episode_round = dict(scan.episode_round)
            self._learner_steps = int(scan.learner_steps.get(self.round, 0))
            self._queries = int(scan.asked.get(self.round, 0))
            for key, agreed in scan.answers.items():
                self.agreement.record(agreed, key)
        self.gate.start_round(self.round)

    # ------------------------------------------------------------------ state the app shows

    def totals(self) -> Totals:
        return Totals(
            episodes=self._episode_count, labels=len(self._labelled),
            human_seconds=self._seconds, round=self.round,
            round_episodes=self._episodes, round_learner_steps=self._learner_steps, round_asked=self._queries,
            answers=self.agreement.answers, agreement=self.agreement.agreement,
        )

    @property
    def episodes_in_round(self) -> int:
        return self._episodes

    @property
    def round_query_mode(self) -> str:
        return query_mode_for(self.query_mode, self.round, self.rounds)

    # ------------------------------------------------------------------ episodes

    @property
    def in_episode(self) -> bool:
        return self._episode is not None

    @property
    def policy_version(self) -> int | None:
        return None if self.policy is None else int(getattr(self.policy, "version", 0))

    def begin_episode(self, obs: Any, seed: int | None = None, attrs: dict | None = None) -> None:
        """Start recording an episode from its reset observation ``obs`` (env seed ``seed``)."""
        if self._episode is not None:
            raise ConfigError("an episode is already running; call end_episode() before beginning another")
        rec = self.writer.begin_episode(
            obs, seed=seed, round=self.round, policy_version=self.policy_version, attrs=dict(attrs or {})
        )
        rng = np.random.default_rng([self.seed, self.round, self._episodes])
        self._episode = _EpisodeState(recorder=rec, rng=rng, obs=obs, history=[obs])

    def propose(self, obs: Any | None = None) -> Proposal:
        """The learner's action at the current state and whether to ask (``obs`` defaults to the
        state the last commit reached). Call once per step, before :meth:`commit`."""
        ep = self._require_episode()
        obs = ep.obs if obs is None else obs
        beta = self.beta_mix(self.round)
        mix_draw = ep.rng.random()  # drawn every step so the random stream never depends on the policy
        if self.policy is None:
            p = Proposal(None, math.nan, False, QueryReason.DEMO.value, None, True)
        else:
            out = self.policy.predict_ensemble(batch_one(obs))
            action = _unbatch_action(out.action)
            unc = float(np.asarray(out.uncertainty).reshape(-1)[0])
            if mix_draw < beta:
                p = Proposal(action, unc, False, QueryReason.DEMO.value, None, True)
            else:
                d: GateDecision = self.gate.decide(obs, unc, ep.rng)
                p = Proposal(action, unc, d.query, d.reason, d.threshold, False, d.value)
        ep.proposal = p
        return p

    def plan_step(self, obs: Any | None = None, *, takeover: bool | Callable[[Any], bool] = False,
                  demonstrate: bool = False) -> StepPlan:
        """Who drives this step and who is asked, by the one rule the CLI and the app share.

        In order: round 0, beta-mixed steps and demonstrations (``demonstrate``: the labeller
        drives a whole episode, e.g. the app's demonstrate mode) are the labeller's (reason
        "demo"); a takeover
        (``takeover`` True, or a callable given the learner's action that says so -- HG-DAgger's
        labeller, or a person holding the takeover key) is an intervention; a gate query is asked
        now in a live round and deferred to review otherwise; else the learner drives unasked.
        """
        p = self.propose(obs)
        if p.expert_drives or demonstrate:
            return StepPlan(p, TAKEOVER, QueryReason.DEMO.value)
        if takeover(p.learner_action) if callable(takeover) else takeover:
            return StepPlan(p, TAKEOVER, QueryReason.INTERVENTION.value)
        if p.query and self.round_query_mode == "live":
            return StepPlan(p, LIVE, p.reason or QueryReason.UNCERTAINTY.value)
        return StepPlan(p, None, p.reason if p.query else None)

    def resolve(self, plan: StepPlan, answer: Any | None, *, took_over: bool = False) -> StepOutcome | None:
        """What to execute given the labeller's ``answer`` to ``plan`` (None: declined / skipped).

        ``took_over``: the labeller drove instead of answering a live question (an intervention).
        Returns None when nobody can drive (a demonstration step the labeller declined).
        """
        learner = plan.learner_action
        if answer is not None and (plan.ask == TAKEOVER or took_over):
            reason = QueryReason.INTERVENTION.value if took_over and plan.ask != TAKEOVER else plan.reason
            return StepOutcome(answer, self.labeller_actor, answer, reason)
        if plan.ask == TAKEOVER:
            if learner is None:
                return None
            return StepOutcome(learner, Actor.LEARNER, None, None)  # the labeller declined to drive
        if plan.ask == LIVE and answer is not None:
            return StepOutcome(learner, Actor.LEARNER, answer, plan.reason)
        return StepOutcome(learner, Actor.LEARNER, None, None, deferred=plan.proposal.query)

    def commit_outcome(
        self, outcome: StepOutcome, reward: float, terminated: bool, truncated: bool, next_obs: Any, *,
        latency_ms: float = 0.0, info: dict | None = None,
    ) -> int:
        """:meth:`commit` for a resolved step."""
        return self.commit(
            outcome.action, outcome.actor, reward, terminated, truncated, next_obs, label=outcome.label,
            label_reason=outcome.reason, latency_ms=latency_ms if outcome.label is not None else 0.0, info=info,
        )

    def commit(
        self,
        executed_action: Any,
        actor: Actor | int,
        reward: float,
        terminated: bool,
        truncated: bool,
        next_obs: Any,
        *,
        label: Any = None,
        label_reason: str | None = None,
        latency_ms: float = 0.0,
        info: dict | None = None,
    ) -> int:
        """Record what happened at this step; returns the step index.

        ``label`` is what the labeller says should have been done here (for a step the labeller
        drove, its own action). ``label_reason`` defaults to: "demo" for beta-mixed / round-0
        steps, "intervention" when someone other than the learner acted although the learner was
        meant to drive, else the gate's reason. ``latency_ms`` is the labeller's time for it.
        """
        ep = self._require_episode()
        p = ep.proposal
        actor = Actor(int(actor))
        step_info = dict(info or {})
        step_info[INFO_UNCERTAINTY] = float(p.uncertainty) if p else math.nan
        step_info[INFO_QUERY] = float(bool(p and p.query))
        step_info[INFO_THRESHOLD] = float(p.threshold) if p and p.threshold is not None else math.nan
        step = ep.recorder.step(
            executed_action, actor, float(reward), bool(terminated), bool(truncated), next_obs, info=step_info
        )
        ep.step = step + 1
        ep.total_return += float(reward)
        ep.labeller_steps += int(actor != Actor.LEARNER)
        if actor == Actor.LEARNER and p is not None and self.policy is not None:
            self._learner_obs.append(ep.obs)
            self._learner_unc.append(p.uncertainty)
            self._learner_steps += 1
            self._queries += int(p.query)
            if p.query:
                prio = float(p.uncertainty) if np.isfinite(p.uncertainty) else 0.0
                self._asked[(None, step)] = (prio, p.reason or QueryReason.UNCERTAINTY.value, self.round)
        if label is not None:
            if label_reason is None:
                if p is None or p.expert_drives:
                    label_reason = QueryReason.DEMO.value
                elif actor != Actor.LEARNER:
                    label_reason = QueryReason.INTERVENTION.value
                else:
                    label_reason = p.reason or QueryReason.REVIEW.value
            ep.recorder.label(
                step, label, source=self.label_source, reason=label_reason, round=self.round,
                latency_ms=float(latency_ms),
            )
            self._count_label(None, step, latency_ms)
            if actor == Actor.LEARNER and p is not None and p.query and p.learner_action is not None:
                agreed = self.agrees(p.learner_action, label)
                self.agreement.record(agreed, (None, step))
                self.gate.observe(agreed)
        elif p is not None and p.query and actor == Actor.LEARNER and self.defer_unanswered:
            self.defer(step, p.uncertainty, p.reason or QueryReason.REVIEW.value)
        self._steps += 1
        ep.obs = next_obs
        ep.history.append(next_obs)
        ep.proposal = None
        return step

    def defer(self, step: int, priority: float, reason: str = QueryReason.UNCERTAINTY.value) -> None:
        """Put a step of the current episode in the review queue (queue items appear once the
        episode has ended and has an id). ``priority``: higher is asked first (disagreement)."""
        ep = self._require_episode()
        if not 0 <= step < ep.step:
            raise ConfigError(f"step {step} has not been recorded in this episode yet")
        prio = float(priority) if np.isfinite(priority) else 0.0
        ep.deferred.append((int(step), prio, reason))
        ep.deferred_obs[int(step)] = ep.history[step]

    def end_episode(self, discard: bool = False) -> str | None:
        """Finish (or discard) the current episode; returns its id (None when discarded)."""
        ep = self._require_episode()
        self._episode = None
        running = [k for k in self._labelled if k[0] is None]
        asked = [k for k in self._asked if k[0] is None]
        if discard:
            ep.recorder.discard()
            for k in running:
                self._drop_labels(k)
            for k in asked:
                del self._asked[k]
            for k in running:
                self.agreement.forget(k)
            return None
        episode_id = ep.recorder.finish()
        self.last_episode = EpisodeSummary(episode_id, self.round, ep.step, ep.total_return, ep.labeller_steps,
                                           self.policy_version)
        for k in running:
            self._labelled[(episode_id, k[1])] = self._labelled.pop(k)
        for k in asked:
            self._asked[(episode_id, k[1])] = self._asked.pop(k)
        self.agreement.rekey(((k, (episode_id, k[1])) for k in running))
        if ep.retracts:
            self.writer.flush()  # the overlay can only undo a label in an episode that is written
            for step in ep.retracts:
                self.writer.retract_label(episode_id, step)
        for step, prio, reason in ep.deferred:
            q = Query(episode=episode_id, step=step, priority=prio, reason=reason, round=self.round)
            self._queue[(episode_id, step)] = q
            self._query_obs[(episode_id, step)] = ep.deferred_obs[step]
        self._episodes += 1
        self._episode_count += 1
        self._episode_round[episode_id] = self.round
        return episode_id

    def discard_episode(self, episode_id: str) -> None:
        """Move a finished episode aside (``discarded/``): its labels and queue items no longer count."""
        self.writer.discard_episode(episode_id)
        for k in [k for k in self._labelled if k[0] == episode_id]:
            self._drop_labels(k)
        for k in [k for k in self._asked if k[0] == episode_id]:
            del self._asked[k]
        for k in [k for k in self.agreement.keys() if isinstance(k, tuple) and k[0] == episode_id]:
            self.agreement.forget(k)
        for k in [k for k in self._queue if k[0] == episode_id]:
            self._queue.pop(k)
            self._query_obs.pop(k, None)
        self._episode_count -= 1
        if self._episode_round.pop(episode_id, self.round) == self.round and self._episodes > 0:
            self._episodes -= 1

    def retract(self, episode: str | None, step: int) -> None:
        """Undo the latest active label at (episode, step); ``episode=None``: the running episode
        (the undo is written to the overlay once the episode has an id). Older labels there become
        effective again; nothing is deleted."""
        key = (episode, int(step))
        stack = self._labelled.get(key)
        if not stack:
            raise ConfigError(f"there is no label to undo at step {step}" + (f" of {episode}" if episode else ""))
        if episode is None:
            self._require_episode().retracts.append(int(step))
        else:
            self.writer.flush()  # a just-finished episode must be on disk before its label is undone
            self.writer.retract_label(episode, int(step))
        self._seconds -= stack.pop()
        if not stack:
            del self._labelled[key]
            self.agreement.forget(key)
            if key in self._asked:  # an asked state with no answer left waits in the review queue again
                prio, reason, rnd = self._asked[key]
                if episode is None:
                    ep = self._require_episode()
                    ep.deferred.append((int(step), prio, reason))
                    ep.deferred_obs[int(step)] = ep.history[int(step)]
                else:
                    self._queue[(episode, int(step))] = Query(episode=episode, step=int(step), priority=prio, reason=reason,
                                                              round=rnd)

    def agrees(self, learner_action: Any, answer: Any) -> bool:
        """Whether the learner's action matches the labeller's answer
        (:func:`ilcore.labelers.actions_differ` in the recorded action space; plain equality
        when the writer has none)."""
        if self._action_space is None:
            return bool(np.array_equal(np.asarray(learner_action), np.asarray(answer)))
        return not actions_differ(learner_action, answer, self._action_space)

    def _drop_labels(self, key: tuple[str | None, int]) -> None:
        self._seconds -= sum(self._labelled.pop(key))

    def _count_label(self, episode: str | None, step: int, latency_ms: float) -> None:
        self._labelled.setdefault((episode, int(step)), []).append(float(latency_ms) / 1000.0)
        self._seconds += float(latency_ms) / 1000.0
        self._labels += 1
        self._human_seconds += float(latency_ms) / 1000.0

    # ------------------------------------------------------------------ review queue

    def review_queue(self) -> list[Query]:
        """States waiting for a label, highest priority (disagreement) first."""
        return sorted(self._queue.values(), key=lambda q: (-q.priority, q.episode, q.step))

    def query_observation(self, query: Query) -> Any:
        """The observation a review-queue item asks about (from memory, else from the recording)."""
        key = (query.episode, query.step)
        if key not in self._query_obs:
            ep = open_recording(Path(self.writer.path)).load_episode(query.episode)
            self._query_obs[key] = sp.index(ep.observations, query.step)
        return self._query_obs[key]

    def answer(self, query: Query, action: Any, *, latency_ms: float = 0.0, source: str | None = None) -> Label:
        """Label a review-queue item (stored at once in the label overlay) and drop it from the queue."""
        lab = Label(
            episode=query.episode, step=query.step, action=action, source=source or self.label_source,
            reason=QueryReason.REVIEW.value, round=self.round, latency_ms=float(latency_ms), time=time.time(),
        )
        self.writer.add_label(lab)
        self._queue.pop((query.episode, query.step), None)
        self._count_label(query.episode, query.step, latency_ms)
        return lab

    def unanswer(self, query: Query) -> None:
        """Undo a review answer: retract its label and put the item back in the queue."""
        self.retract(query.episode, query.step)
        if (query.episode, query.step) not in self._labelled:
            self._queue[(query.episode, query.step)] = query

    def skip(self, query: Query) -> None:
        """Drop a review-queue item without labelling it."""
        self._queue.pop((query.episode, query.step), None)
        self._query_obs.pop((query.episode, query.step), None)

    # ------------------------------------------------------------------ rounds

    def end_round(self, train: bool = True) -> RoundResult:
        """Close the round: retrain on every label so far (unless ``train=False``, e.g. when the
        app trains in a background process and later calls :meth:`set_policy`), recalibrate the
        gate, and move to the next round."""
        if self._episode is not None:
            raise ConfigError("end the running episode before ending the round")
        if hasattr(self.writer, "flush"):
            self.writer.flush()
        finished = self.round
        self._last_round_obs = self._learner_obs
        last_unc = np.asarray(self._learner_unc, dtype=np.float64)
        if train:
            paths = [Path(self.writer.path)]
            if self.train_fn is not None:
                new_policy = self.train_fn(paths, self.policy)
            else:
                new_policy = retrain_policy(paths, self.retrain_config, previous=self.policy)
            self._install(new_policy, finished + 1)
        else:
            self.gate.calibrate(self._last_round_obs, last_unc)
        threshold = _gate_threshold(self.gate)
        result = RoundResult(
            round=finished, episodes=self._episodes, steps=self._steps, learner_steps=self._learner_steps,
            queries=self._queries, labels=self._labels, human_seconds=self._human_seconds,
            query_rate=self._queries / self._learner_steps if self._learner_steps else math.nan,
            label_rate=self._labels / self._steps if self._steps else math.nan,
            threshold=threshold, policy_version=self.policy_version, trained=train,
        )
        self.round = finished + 1
        self._reset_round_totals()
        self.gate.start_round(self.round)
        self._save_state()
        return result

    def set_policy(self, policy: Learner, *, calibrate: bool = True, calibration_obs: Sequence[Any] | None = None) -> None:
        """Install a policy trained elsewhere (a background process) and calibrate the gate in its
        units before it asks: on ``calibration_obs`` (states it visits, e.g. from the training
        worker's silent rollout), else on ``calibrate_fn(policy)``, else on the last round's states."""
        self._install(policy, int(getattr(policy, "version", self.round)), calibrate=calibrate,
                      calibration_obs=calibration_obs)

    def install_saved(self, path: str | Path, *, calibrate: bool = True) -> Learner:
        """Load a policy saved by :func:`train_next_policy` (with its calibration states) and install it."""
        from ilcore.policies import Policy

        policy = Policy.load(path)
        # Saved beside the policy in its own observation space (the recording's it was trained on).
        states = load_calibration_states(path, policy.observation_space) if calibrate else None
        self._install(policy, int(getattr(policy, "version", self.round)), calibrate=calibrate,
                      calibration_obs=states, path=Path(path))
        return policy

    def _install(self, policy: Learner, version: int, calibrate: bool = True,
                 calibration_obs: Sequence[Any] | None = None, path: Path | None = None) -> None:
        if hasattr(policy, "version"):
            policy.version = int(version)
        self.policy = policy
        self.policy_path = path
        if hasattr(policy, "eval"):
            policy.eval()
        if _wants_labelled_states(self.gate) and hasattr(self.writer, "observation_space"):
            self.gate.set_labelled(labelled_observations(load_transitions([Path(self.writer.path)], labels="label")))
        if calibrate and hasattr(policy, "predict_ensemble"):
            states = list(calibration_obs) if calibration_obs is not None else None
            if states is None and self.calibrate_fn is not None:
                states = list(self.calibrate_fn(policy))
            if not states:
                states = self._last_round_obs  # re-scored by the new policy: its units, the old states
            if states:
                self.gate.calibrate(states, policy_uncertainty(policy, states))
        self._save_state(path)

    def _save_state(self, policy_path: Path | None = None) -> None:
        """Record the round (and the installed policy) in the session folder for resume."""
        folder = Path(self.writer.path)
        if not folder.is_dir():
            return  # in-memory writers (tests)
        state = read_controller_state(folder)
        state["round"] = self.round
        if policy_path is not None:
            try:
                state["policy"] = str(Path(policy_path).resolve().relative_to(folder.resolve()))
            except ValueError:
                state["policy"] = str(Path(policy_path).resolve())
            state["policy_version"] = self.policy_version
        write_json_atomic(folder / STATE_FILE, state)

    def _reset_round_totals(self) -> None:
        self._episodes = 0
        self._steps = 0
        self._learner_steps = 0
        self._queries = 0
        self._labels = 0
        self._human_seconds = 0.0
        self._learner_obs = []
        self._learner_unc = []

    def _require_episode(self) -> _EpisodeState:
        if self._episode is None:
            raise ConfigError("no episode is running; call begin_episode(obs) first")
        return self._episode


# ---------------------------------------------------------------------- retraining


@dataclass
class RetrainConfig:
    """How each round's policy is trained from all labels so far -- the one recipe that
    ``ilcore dagger``, ``run_dagger`` and the app's background trainer all use.

    bc: an ``ilcore.algos.bc.BCConfig`` (None: small defaults suited to classic control:
        5 members, (64, 64), 30 epochs, no validation split -- DAgger's early rounds have a few
        episodes of very different sizes, and a per-episode split left one sample to early-stop on)
    warm_start: start from the previous round's weights instead of from scratch
    intervention_weighting: IWR-style balancing: intervention labels and the other labels each
        carry half of the total weight
    reason_weights: extra per-reason weight factors, e.g. {"uncertainty": 2.0}
    calibration_steps: env steps of the silent rollout each new policy makes before its round, on
        whose states the gate is calibrated (0: re-score the last round's states instead)
    min_updates: train for at least this many minibatch updates per member (more epochs when the
        labels are few). Epochs alone scale training with the label count: 30 epochs of a 50-label
        demonstration at batch 64 are 30 Adam steps, which leaves the early rounds' policies (and
        the ensemble whose disagreement drives the gate) near their random initialisation. On
        CartPole (ensemble 5 x (32, 32), 30 epochs) BC on 100 labels returned 434/422/330/388 on
        seeds 0-3 and DAgger's 50-label first policy 89-238; with 500 updates BC returned
        497/492/500/496 and DAgger's first policy 200-471. Doubling it to 1000 (the default since
        issue 14) took the ensemble gate on Pendulum from 3/5 seeds at 427 labels to 5/5 at 296, with
        plain DAgger unchanged, and BC on CartPole's 100-step demonstration from 2/5 seeds at the bar
        to 3/5; 2000 gave nothing more (docs/benchmarks.md, label efficiency). A retraining on ~1000
        labels then takes a few seconds on 2 CPU cores. 0 keeps the epoch count as given.
    device: where to train ("auto", "cpu", "cuda", "cuda:N"; see ``ilcore.devices``); None keeps
        the BC config's own ``device``
    """

    bc: Any = None
    warm_start: bool = False
    intervention_weighting: bool = False
    reason_weights: dict[str, float] = field(default_factory=dict)
    calibration_steps: int = 1000
    min_updates: int = 1000
    device: str | None = None

    def bc_config(self) -> Any:
        from ilcore.algos.bc import BCConfig

        if self.bc is not None:
            return self.bc
        return BCConfig(epochs=30, ensemble=5, hidden=(64, 64), seed=0, valid_fraction=0.0, patience=None)


def sample_weights(reasons: np.ndarray, base: np.ndarray, config: RetrainConfig) -> np.ndarray:
    """Per-sample training weights (N,) float32 from each label's reason (N,) and base weights."""
    w = np.asarray(base, dtype=np.float64).copy()
    reasons = np.asarray(reasons).astype(str)
    for reason, factor in config.reason_weights.items():
        w[reasons == reason] *= float(factor)
    if config.intervention_weighting:
        inter = reasons == QueryReason.INTERVENTION.value
        n, n_int = len(w), int(inter.sum())
        if 0 < n_int < n:
            # Each group carries half the total weight, whatever its size (IWR, Mandlekar 2020).
            w[inter] *= (n / 2) / w[inter].sum()
            w[~inter] *= (n / 2) / w[~inter].sum()
    return w.astype(np.float32)


def retrain_policy(paths: Sequence[str | Path], config: RetrainConfig | None = None, *, previous: Any = None,
                   callback: Callable[[Any], None] | None = None) -> Any:
    """Train a policy on every effective label in the recordings at ``paths``.

    A pure function of (recordings, config) -- plus ``previous`` when warm-starting -- so the app
    can run it in a background process and resume can rebuild the policy from disk.
    ``callback(EpochReport)`` is called after each epoch (the app's progress bar).
    """
    from ilcore.algos.bc import train_bc

    config = config or RetrainConfig()
    bc = config.bc_config()
    if config.device is not None:
        bc = dataclasses.replace(bc, device=config.device)
    valid = getattr(bc, "valid_fraction", None)
    data = load_transitions(
        [Path(p) for p in paths], labels="label", valid_fraction=0.0 if valid is None else valid,
        seed=getattr(bc, "seed", 0),
    )
    if len(data) == 0:
        raise ConfigError("there are no labels to train on yet; record or label some steps first")
    if config.min_updates > 0:
        # Updates per epoch as train_bc counts them (a pass over the training split, maybe capped).
        n_train = len(data) if getattr(data, "train_mask", None) is None else int(np.sum(data.train_mask))
        per_epoch = max(math.ceil(n_train / bc.batch_size), 1)
        if getattr(bc, "steps_per_epoch", None) is not None:
            per_epoch = min(per_epoch, bc.steps_per_epoch)
        bc = dataclasses.replace(bc, epochs=max(bc.epochs, math.ceil(config.min_updates / per_epoch)))
    weights = sample_weights(data.reason, data.weights, config)
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        try:
            data = dataclasses.replace(data, weights=weights)
        except TypeError:
            data.weights = weights
    else:
        data.weights = weights
    init = previous if (config.warm_start and previous is not None) else None
    return train_bc(data, bc, policy=init, progress=False, callback=callback).policy


@dataclass(frozen=True)
class TrainedPolicy:
    """A policy :func:`train_next_policy` saved: where, and what it was trained on and scored."""

    path: Path
    version: int
    labels: int
    calibration_states: int
    eval_return: float | None
    eval_ci95: float | None
    seconds: float
    reference: Reference | None = None  # the session's readiness scale, given with an evaluation


def policy_dir(session_dir: str | Path, version: int) -> Path:
    """Where policy ``version`` of a session is kept: ``<session>/policies/v<NNN>``."""
    return Path(session_dir) / POLICIES_DIR / f"v{int(version):03d}"


def train_next_policy(
    session_dir: str | Path,
    config: RetrainConfig | None,
    *,
    version: int,
    env_id: str,
    env_kwargs: dict | None = None,
    previous: str | Path | None = None,
    max_episode_steps: int | None = None,
    eval_episodes: int = 0,
    seed: int = 0,
    env: Any = None,
    callback: Callable[[Any], None] | None = None,
) -> TrainedPolicy:
    """The round's retraining recipe, end to end, as the app's worker and ``ilcore dagger`` run it:
    train on every label in ``session_dir`` (:func:`retrain_policy`; warm-started from the policy
    saved at ``previous`` when the config asks), save it as ``policies/v<version>``, roll it out
    silently for ``config.calibration_steps`` steps and keep those states beside it (the gate is
    calibrated on them before the policy's first question), and evaluate it (``eval_episodes``).

    ``env``: an env to roll out in (default: a new one from ``env_id``/``env_kwargs``).
    """
    from ilcore.policies import Policy

    config = config or RetrainConfig()
    started = time.time()
    prev = Policy.load(previous) if (previous is not None and config.warm_start) else None
    policy = retrain_policy([session_dir], config, previous=prev, callback=callback)
    policy.version = int(version)
    out = policy_dir(session_dir, version)
    policy.save(out)
    states: list[Any] = []
    if config.calibration_steps > 0:
        own_env = env is None
        if own_env:
            env = make_env(env_id, env_kwargs)
        try:
            states = calibration_states(policy, env, config.calibration_steps, seed=_calibration_seed(seed, version),
                                        max_episode_steps=max_episode_steps)
        finally:
            if own_env:
                env.close()
        save_calibration_states(out, states, policy.observation_space)
    eval_return = eval_ci = None
    if eval_episodes > 0:
        ev = evaluate(policy, env_id, episodes=eval_episodes, seed=10_000 + int(version), env_kwargs=env_kwargs or None)
        eval_return = float(ev.mean_return)
        eval_ci = None if ev.ci95 is None else float(ev.ci95[1] - ev.ci95[0]) / 2.0
    labels = 0

    def counted() -> Iterator[Any]:  # one pass over the recording (image sessions need not fit in memory)
        nonlocal labels
        for ep in open_recording(session_dir).episodes():
            labels += len(ep.effective_labels())
            yield ep

    demos = demonstration_returns(counted(), own_time_limit(env_id, env_kwargs))
    # the scale a person reads the evaluation on
    reference = session_reference(session_dir, demos, env_id, env_kwargs) if eval_return is not None else None
    return TrainedPolicy(out, int(version), labels, len(states), eval_return, eval_ci, time.time() - started,
                         reference)


def calibration_states(policy: Learner, env: Any, steps: int, *, seed: int = 0,
                       max_episode_steps: int | None = None) -> list[Any]:
    """States ``policy`` visits when it drives alone: ``steps`` env steps over as many episodes
    as that takes (env seeds drawn from ``seed``; each episode cut at ``max_episode_steps``).
    Nothing is recorded; the gate calibrates on these before the round asks anything."""
    states: list[Any] = []
    episode = 0
    while len(states) < steps:
        obs, _ = env.reset(seed=_calibration_seed(seed, episode))
        episode += 1
        t = 0
        while len(states) < steps:
            states.append(obs)
            action = _unbatch_action(policy.predict_ensemble(batch_one(obs)).action)
            obs, _r, terminated, truncated, _i = env.step(action)
            t += 1
            if terminated or truncated or (max_episode_steps is not None and t >= max_episode_steps):
                break
    return states


def policy_uncertainty(policy: Learner, observations: Sequence[Any], batch: int = 256) -> np.ndarray:
    """The policy's disagreement at each of ``observations`` (N,), in batches (images stay small)."""
    out = [np.asarray(policy.predict_ensemble(stack_obs(observations[i:i + batch])).uncertainty, dtype=np.float64).reshape(-1)
           for i in range(0, len(observations), batch)]
    return np.concatenate(out) if out else np.zeros(0)


def save_calibration_states(folder: str | Path, states: Sequence[Any], observation_space: Any) -> Path:
    """Keep a policy's calibration states beside it (``calibration.npz``, one array per leaf)."""
    flat = sp.flat_from_nested(observation_space, sp.stack(observation_space, list(states))) if states else {}
    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"leaf{i}": np.asarray(v) for i, v in enumerate(flat.values())}
    np.savez_compressed(buf, paths=np.asarray(list(flat.keys()), dtype=str), **arrays)
    return write_bytes_atomic(Path(folder) / CALIBRATION_FILE, buf.getvalue())


def load_calibration_states(folder: str | Path, observation_space: Any) -> list[Any] | None:
    """The states saved by :func:`save_calibration_states` (None when there are none)."""
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        _check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as z:
            paths = [str(p) for p in z["paths"]]
            flat = {p: z[f"leaf{i}"] for i, p in enumerate(paths)}
        if not flat:
            return None
        n = len(next(iter(flat.values())))
        nested = sp.nested_from_flat(observation_space, flat)
        sp.check_batch(observation_space, nested, n)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"cannot read the calibration states in {path}: {exc}") from None
    return [sp.index(nested, i) for i in range(n)]


MAX_CALIBRATION_BYTES = 1 << 30  # a silent rollout of 1000 CarRacing frames is 27 MB; refuse a crafted size


def _check_npz_sizes(path: Path) -> None:
    """Refuse an .npz whose arrays declare more than MAX_CALIBRATION_BYTES before numpy allocates them."""
    with zipfile.ZipFile(path) as zf:
        total = 0
        for info in zf.infolist():
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(fh)  # the header alone, nothing allocated
            total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            if total > MAX_CALIBRATION_BYTES:
                raise ValueError(f"its arrays declare {total / 2**30:.1f} GiB")


def read_controller_state(folder: str | Path) -> dict[str, Any]:
    """The controller's small state file in a session folder ({} when there is none)."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        if not isinstance(state.get("round", 0), int) or isinstance(state.get("round", 0), bool) or state.get("round", 0) < 0:
            raise ValueError("round is not a non-negative integer")
        if "policy" in state and not isinstance(state["policy"], str):
            raise ValueError("policy is not a path")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is not a readable DAgger state file ({exc}); move it aside to start the round count afresh") from None
    return state


def _calibration_seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([int(seed), 0xCA1, int(k)]).generate_state(1)[0] % (2**31))


def _wants_labelled_states(gate: Any) -> bool:
    return isinstance(gate, NoveltyGate) or any(_wants_labelled_states(g) for g in getattr(gate, "gates", ()))


def _gate_threshold(gate: Any) -> float | None:
    t = getattr(gate, "threshold", None)
    if t is None and hasattr(gate, "gates"):
        t = next((g.threshold for g in gate.gates if getattr(g, "threshold", None) is not None), None)
    return None if t is None else float(t)


def batch_one(obs: Any) -> Any:
    """One observation -> a batch of one (leading axis added to every leaf)."""
    return sp.map_leaves(lambda x: np.asarray(x)[None], obs)


def stack_obs(observations: Sequence[Any]) -> Any:
    """A list of single observations -> one nested batch (leading axis N)."""
    first = observations[0]
    if isinstance(first, dict):
        return {k: stack_obs([o[k] for o in observations]) for k in first}
    if isinstance(first, tuple):
        return tuple(stack_obs([o[i] for o in observations]) for i in range(len(first)))
    return np.stack([np.asarray(o) for o in observations])


def _unbatch_action(actions: Any) -> Any:
    a = np.asarray(actions)[0]
    return int(a) if a.ndim == 0 and a.dtype.kind in "iu" else a


def labelled_observations(data: Any) -> np.ndarray:
    """Flattened labelled observations (N, D) from a TransitionData (for novelty gates)."""
    obs = data.obs
    n = len(data)
    if isinstance(obs, (dict, tuple)):
        return np.stack([flatten_obs(sp.index(obs, i)) for i in range(n)])
    return np.asarray(obs, dtype=np.float32).reshape(n, -1)
