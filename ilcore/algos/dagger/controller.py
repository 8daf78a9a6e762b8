"""The step-wise DAgger controller: the caller owns the clock and drives it one step at a time.

One round of use::

    ctrl.begin_episode(obs, seed=s)
    while not done:
        p = ctrl.propose(obs)                     # learner action, uncertainty, gate decision
        ...decide who acts (p.expert_drives, a takeover), ask for a label if p.query...
        obs, r, term, trunc, info = env.step(executed)
        ctrl.commit(executed, actor, r, term, trunc, obs, label=..., label_reason=..., latency_ms=...)
    ctrl.end_episode()
    ...more episodes; answer ctrl.review_queue() items with ctrl.answer(q, action)...
    result = ctrl.end_round()                     # retrain on every label, recalibrate, next round

Nothing here pumps events, sleeps or touches a screen: the pygame app and the blocking
:func:`ilcore.algos.dagger.run.run_dagger` drive the same object. Every step and label goes to
the :class:`~ilcore.data.SessionWriter` as it happens, and the per-step gate outcome is stored in
the step's info (``dagger_uncertainty``, ``dagger_query``, ``dagger_threshold``), so a killed
session's state (round, review queue, label totals) is rebuilt from its recordings alone
(:func:`scan_session`).

Round 0 is the demonstration round: with no policy yet, the labeller drives and every step is
a label with reason "demo". The learner first drives in round 1.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ilcore.algos.dagger.gates import Gate, GateDecision, flatten_obs
from ilcore.algos.dagger.schedules import Constant, Schedule
from ilcore.errors import ConfigError
from ilcore.types import Actor, Label, Query, QueryReason

# Keys this controller adds to each step's info (scalars, so they are stored per step).
INFO_UNCERTAINTY = "dagger_uncertainty"
INFO_QUERY = "dagger_query"
INFO_THRESHOLD = "dagger_threshold"

TrainFn = Callable[[Sequence[Path], Any], Any]
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
class RoundResult:
    """Totals for one finished round (``round`` is the round that just ended).

    gate_rate:  asked / learner-driven steps (the gate's realized query rate; nan if none)
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
    gate_rate: float
    label_rate: float
    threshold: float | None
    policy_version: int | None
    trained: bool


@dataclass
class _EpisodeState:
    recorder: Any
    rng: np.random.Generator
    obs: Any
    history: list[Any]
    step: int = 0
    proposal: Proposal | None = None
    deferred: list[tuple[int, float, str]] = field(default_factory=list)  # (step, priority, reason)
    deferred_obs: dict[int, Any] = field(default_factory=dict)


class DaggerController:
    """DAgger with a person as the expert, driven step by step.

    Args:
        env_id: the env being recorded (stored with each episode).
        writer: an open ``ilcore.data.SessionWriter``; every step and label is written through it.
        gate: decides which learner-driven states to ask about (``ilcore.algos.dagger.gates``).
        policy: the current learner (an ``ilcore.policies.Policy`` or anything with
            ``predict(obs_batch)``); None before the first training (round 0 = demonstrations).
        beta_mix: probability per step that the labeller drives (Ross 2011 beta-mixing), per
            round; independent of the gate (beta-querying is :class:`BetaGate`).
        retrain: options for :func:`retrain_policy` (ignored when ``train_fn`` is given).
        train_fn: replaces :func:`retrain_policy`: ``train_fn(paths, previous_policy) -> policy``.
        label_source: stored as the ``source`` of the labels committed here ("human",
            "scripted", "simulated", ...).
        round: the round to start in (resume); see :func:`scan_session`.
        seed: seeds the per-episode random draws (beta-mixing, beta-querying), which depend only on
            (seed, round, episode number in the round), so a resumed run draws the same way.
        defer_unanswered: a learner-driven step the gate asked about, committed without a label,
            goes to the review queue (priority = disagreement).
        queue: review-queue items to start with (resume).
        episodes_in_round: episodes of ``round`` already recorded (resume; keeps random draws aligned).
    """

    def __init__(
        self,
        env_id: str,
        writer: Any,
        gate: Gate,
        *,
        policy: Any = None,
        beta_mix: Schedule = Constant(0.0),
        retrain: Any = None,
        train_fn: TrainFn | None = None,
        label_source: str = "human",
        round: int = 0,
        seed: int = 0,
        defer_unanswered: bool = True,
        queue: Sequence[Query] = (),
        episodes_in_round: int = 0,
    ) -> None:
        self.env_id = env_id
        self.writer = writer
        self.gate = gate
        self.policy = policy
        self.beta_mix = beta_mix
        self.retrain_config = retrain
        self.train_fn = train_fn
        self.label_source = label_source
        self.round = int(round)
        self.seed = int(seed)
        self.defer_unanswered = defer_unanswered
        self._queue: dict[tuple[str, int], Query] = {(q.episode, q.step): q for q in queue}
        self._query_obs: dict[tuple[str, int], Any] = {}
        self._episode: _EpisodeState | None = None
        self._learner_obs: list[Any] = []  # learner-driven states of this round (gate calibration)
        self._learner_unc: list[float] = []
        self._last_round_obs: list[Any] = []
        self._reset_round_totals()
        self._episodes = int(episodes_in_round)
        self.gate.start_round(self.round)

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
            out = self.policy.predict_ensemble(_batch_one(obs))
            action = _unbatch_action(out.action)
            unc = float(np.asarray(out.uncertainty).reshape(-1)[0])
            if mix_draw < beta:
                p = Proposal(action, unc, False, QueryReason.DEMO.value, None, True)
            else:
                d: GateDecision = self.gate.decide(obs, unc, ep.rng)
                p = Proposal(action, unc, d.query, d.reason, d.threshold, False, d.value)
        ep.proposal = p
        return p

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
        if actor == Actor.LEARNER and p is not None and self.policy is not None:
            self._learner_obs.append(ep.obs)
            self._learner_unc.append(p.uncertainty)
            self._learner_steps += 1
            self._queries += int(p.query)
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
            self._labels += 1
            self._human_seconds += float(latency_ms) / 1000.0
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
        if discard:
            ep.recorder.discard()
            return None
        episode_id = ep.recorder.finish()
        for step, prio, reason in ep.deferred:
            q = Query(episode=episode_id, step=step, priority=prio, reason=reason, round=self.round)
            self._queue[(episode_id, step)] = q
            self._query_obs[(episode_id, step)] = ep.deferred_obs[step]
        self._episodes += 1
        return episode_id

    # ------------------------------------------------------------------ review queue

    def review_queue(self) -> list[Query]:
        """States waiting for a label, highest priority (disagreement) first."""
        return sorted(self._queue.values(), key=lambda q: (-q.priority, q.episode, q.step))

    def query_observation(self, query: Query) -> Any:
        """The observation a review-queue item asks about (from memory, else from the recording)."""
        key = (query.episode, query.step)
        if key not in self._query_obs:
            from ilcore.data import open_recording
            from ilcore.spaces import index

            ep = open_recording(self.writer.path).load_episode(query.episode)
            self._query_obs[key] = index(ep.observations, query.step)
        return self._query_obs[key]

    def answer(self, query: Query, action: Any, *, latency_ms: float = 0.0, source: str | None = None) -> Label:
        """Label a review-queue item (stored at once in the label overlay) and drop it from the queue."""
        lab = Label(
            episode=query.episode, step=query.step, action=action, source=source or self.label_source,
            reason=QueryReason.REVIEW.value, round=self.round, latency_ms=float(latency_ms), time=time.time(),
        )
        self.writer.add_label(lab)
        self._queue.pop((query.episode, query.step), None)
        self._query_obs.pop((query.episode, query.step), None)
        self._labels += 1
        self._human_seconds += float(latency_ms) / 1000.0
        return lab

    def skip(self, query: Query) -> None:
        """Drop a review-queue item without labelling it."""
        self._queue.pop((query.episode, query.step), None)
        self._query_obs.pop((query.episode, query.step), None)

    # ------------------------------------------------------------------ rounds

    def end_round(self, train: bool = True) -> RoundResult:
        """Close the round: retrain on every label so far (unless ``train=False``, e.g. when the
        app trains in a background process and later calls :meth:`set_policy`), recalibrate the
        gate on this round's learner-driven states, and move to the next round."""
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
            if _wants_labelled_states(self.gate):
                from ilcore.data import load_transitions

                self.gate.set_labelled(labelled_observations(load_transitions(paths, labels="label")))
        else:
            self.gate.calibrate(self._last_round_obs, last_unc)
        threshold = _gate_threshold(self.gate)
        result = RoundResult(
            round=finished, episodes=self._episodes, steps=self._steps, learner_steps=self._learner_steps,
            queries=self._queries, labels=self._labels, human_seconds=self._human_seconds,
            gate_rate=self._queries / self._learner_steps if self._learner_steps else math.nan,
            label_rate=self._labels / self._steps if self._steps else math.nan,
            threshold=threshold, policy_version=self.policy_version, trained=train,
        )
        self.round = finished + 1
        self._reset_round_totals()
        self.gate.start_round(self.round)
        return result

    def set_policy(self, policy: Any, *, calibrate: bool = True) -> None:
        """Install a policy trained elsewhere (a background process) and recalibrate the gate on
        the last finished round's learner-driven states."""
        self._install(policy, self.round, calibrate=calibrate)

    def _install(self, policy: Any, version: int, calibrate: bool = True) -> None:
        if hasattr(policy, "version"):
            policy.version = int(version)
        self.policy = policy
        if hasattr(policy, "eval"):
            policy.eval()
        if calibrate and self._last_round_obs and hasattr(policy, "predict"):
            # Threshold in the new policy's units: its disagreement on the states it will roughly revisit.
            unc = np.asarray(policy.predict_ensemble(_stack(self._last_round_obs)).uncertainty, dtype=np.float64)
            self.gate.calibrate(self._last_round_obs, unc)

    def set_labelled_states(self, observations: np.ndarray) -> None:
        """Tell novelty gates which states are labelled, (N, D) flattened observations."""
        self.gate.set_labelled(observations)

    def calibrate_on(self, observations: Sequence[Any]) -> None:
        """Recalibrate the gate on given learner-driven states with the current policy (resume)."""
        self._last_round_obs = list(observations)
        if self.policy is not None and self._last_round_obs:
            unc = np.asarray(self.policy.predict_ensemble(_stack(self._last_round_obs)).uncertainty, dtype=np.float64)
            self.gate.calibrate(self._last_round_obs, unc)

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
    """How each round's policy is trained from all labels so far.

    bc: an ``ilcore.algos.bc.BCConfig`` (None: small defaults suited to classic control:
        5 members, (64, 64), 30 epochs, no validation split -- DAgger's early rounds have a few
        episodes of very different sizes, and a per-episode split left one sample to early-stop on)
    warm_start: start from the previous round's weights instead of from scratch
    intervention_weighting: IWR-style balancing: intervention labels and the other labels each
        carry half of the total weight
    reason_weights: extra per-reason weight factors, e.g. {"uncertainty": 2.0}
    """

    bc: Any = None
    warm_start: bool = False
    intervention_weighting: bool = False
    reason_weights: dict[str, float] = field(default_factory=dict)

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


def retrain_policy(paths: Sequence[str | Path], config: RetrainConfig | None = None, *, previous: Any = None) -> Any:
    """Train a policy on every effective label in the recordings at ``paths``.

    A pure function of (recordings, config) -- plus ``previous`` when warm-starting -- so the app
    can run it in a background process and resume can rebuild the policy from disk.
    """
    import dataclasses

    from ilcore.algos.bc import train_bc
    from ilcore.data import load_transitions

    config = config or RetrainConfig()
    bc = config.bc_config()
    valid = getattr(bc, "valid_fraction", None)
    data = load_transitions(
        [Path(p) for p in paths], labels="label", valid_fraction=0.0 if valid is None else valid,
        seed=getattr(bc, "seed", 0),
    )
    if len(data) == 0:
        raise ConfigError("there are no labels to train on yet; record or label some steps first")
    weights = sample_weights(data.reason, data.weights, config)
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        try:
            data = dataclasses.replace(data, weights=weights)
        except TypeError:
            data.weights = weights
    else:
        data.weights = weights
    init = previous if (config.warm_start and previous is not None) else None
    return train_bc(data, bc, policy=init, progress=False).policy


def _wants_labelled_states(gate: Any) -> bool:
    from ilcore.algos.dagger.gates import NoveltyGate

    return isinstance(gate, NoveltyGate) or any(_wants_labelled_states(g) for g in getattr(gate, "gates", ()))


def _gate_threshold(gate: Any) -> float | None:
    t = getattr(gate, "threshold", None)
    if t is None and hasattr(gate, "gates"):
        t = next((g.threshold for g in gate.gates if getattr(g, "threshold", None) is not None), None)
    return None if t is None else float(t)


def _batch_one(obs: Any) -> Any:
    """One observation -> a batch of one (leading axis added to every leaf)."""
    if isinstance(obs, dict):
        return {k: _batch_one(v) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_batch_one(v) for v in obs)
    return np.asarray(obs)[None]


def _stack(observations: Sequence[Any]) -> Any:
    """A list of single observations -> one nested batch (leading axis N)."""
    first = observations[0]
    if isinstance(first, dict):
        return {k: _stack([o[k] for o in observations]) for k in first}
    if isinstance(first, tuple):
        return tuple(_stack([o[i] for o in observations]) for i in range(len(first)))
    return np.stack([np.asarray(o) for o in observations])


def _unbatch_action(actions: Any) -> Any:
    a = np.asarray(actions)[0]
    return int(a) if a.ndim == 0 and a.dtype.kind in "iu" else a


def labelled_observations(data: Any) -> np.ndarray:
    """Flattened labelled observations (N, D) from a TransitionData (for novelty gates)."""
    obs = data.obs
    n = len(data)
    if isinstance(obs, (dict, tuple)):
        return np.stack([flatten_obs(_index(obs, i)) for i in range(n)])
    return np.asarray(obs, dtype=np.float32).reshape(n, -1)


def _index(nested: Any, i: int) -> Any:
    if isinstance(nested, dict):
        return {k: _index(v, i) for k, v in nested.items()}
    if isinstance(nested, tuple):
        return tuple(_index(v, i) for v in nested)
    return nested[i]
