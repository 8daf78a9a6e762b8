"""The blocking DAgger loop for scripts, tests and the CLI, built on :class:`DaggerController`.

Layout of ``out_dir``: ``recordings/`` (the session, written as it happens), ``dagger_run.json``
(the run's settings) and ``dagger_rounds.json`` (per-round results, rewritten after each
round). A killed run continues with ``run_dagger(..., resume=True)``: the round, the label and
human-second totals and the review queue come from the recordings; the policy is retrained from
them (a pure function of the recordings), so no label is lost.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ilcore.algos.dagger.controller import (
    INFO_QUERY,
    DaggerController,
    RetrainConfig,
    RoundResult,
    TrainFn,
    retrain_policy,
)
from ilcore.algos.dagger.gates import Gate
from ilcore.algos.dagger.labelers import LIVE, REVIEW, TAKEOVER, LabelContext, Labeler
from ilcore.algos.dagger.schedules import Constant, Schedule
from ilcore.errors import ConfigError
from ilcore.types import Actor, Query, QueryReason

RECORDINGS = "recordings"
ROUNDS_FILE = "dagger_rounds.json"


@dataclass
class DaggerRunConfig:
    """Settings of a blocking DAgger run.

    rounds: learner rounds after the demonstration round (round 0)
    demo_episodes: round-0 episodes the labeller drives (every step a "demo" label)
    episodes_per_round: learner episodes per round
    beta_mix: per-round probability that the labeller drives a step (Ross 2011)
    interventions: ask ``labeler.takes_over`` before learner steps (HG-DAgger)
    review: answer the gate's queries from the review queue at the end of each round
        instead of live at the step (the same labels, given later with reason "review")
    eval_episodes: evaluation episodes of each round's policy (0: skip evaluation)
    max_episode_steps: cut episodes at this many steps (None: the env's own limit)
    demo_max_steps: cut round-0 demonstrations at this many steps (None: as other episodes)
    seed: seeds env resets, random draws and training
    retrain: how each round's policy is trained
    """

    rounds: int = 5
    demo_episodes: int = 1
    episodes_per_round: int = 2
    beta_mix: Schedule = Constant(0.0)
    interventions: bool = False
    review: bool = False
    eval_episodes: int = 10
    max_episode_steps: int | None = None
    demo_max_steps: int | None = None
    seed: int = 0
    retrain: RetrainConfig = field(default_factory=RetrainConfig)


@dataclass(frozen=True)
class RoundStats:
    """One round of a run; ``labels`` and ``human_seconds`` are cumulative (demos included).

    query_rate: labels given in the round / states visited in the round
    gate_rate:  gate asks / learner-driven states in the round (nan when the learner never drove)
    """

    round: int
    labels: int
    human_seconds: float
    mean_return: float
    ci95: float
    query_rate: float
    gate_rate: float
    episodes: int
    steps: int

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass
class DaggerRunResult:
    rounds: list[RoundStats]
    policy: Any
    out_dir: Path


@dataclass(frozen=True)
class SessionSummary:
    """What a session's recordings say about a DAgger run (for resume).

    episodes_per_round: round -> finished episodes
    labels / human_seconds: every label row so far (superseded ones included) and the sum of
        their latencies in seconds
    learner_obs: round -> observations where the learner drove (for gate calibration)
    pending: queried learner steps that have no label yet (the review queue)
    """

    episodes_per_round: dict[int, int]
    labels: int
    human_seconds: float
    learner_obs: dict[int, list[Any]]
    pending: list[Query]

    @property
    def last_round(self) -> int | None:
        return max(self.episodes_per_round) if self.episodes_per_round else None


def scan_session(path: str | Path) -> SessionSummary:
    """Read a session folder's episodes and rebuild the controller's totals."""
    from ilcore.data import open_recording
    from ilcore.spaces import index

    rec = open_recording(path)
    counts: dict[int, int] = {}
    learner_obs: dict[int, list[Any]] = {}
    pending: list[Query] = []
    labels, seconds = 0, 0.0
    for ep in rec.episodes():
        r = int(ep.meta.round)
        counts[r] = counts.get(r, 0) + 1
        labels += len(ep.labels)
        seconds += sum(float(lab.latency_ms) for lab in ep.labels) / 1000.0
        if ep.actors is None:
            continue
        labelled = set(ep.effective_labels())
        asked = np.asarray(ep.infos.get(INFO_QUERY, np.zeros(ep.length)))
        unc = np.asarray(ep.infos.get("dagger_uncertainty", np.zeros(ep.length)))
        for t in np.flatnonzero(ep.actors == int(Actor.LEARNER)):
            learner_obs.setdefault(r, []).append(index(ep.observations, int(t)))
            if asked[t] > 0 and int(t) not in labelled:
                prio = float(unc[t]) if np.isfinite(unc[t]) else 0.0
                pending.append(Query(ep.id, int(t), prio, QueryReason.UNCERTAINTY.value, r))
    return SessionSummary(counts, labels, seconds, learner_obs, pending)


def actor_of(labeler: Labeler) -> Actor:
    """The Actor stored for steps a labeller drives: SCRIPTED for scripted experts, else HUMAN."""
    actor = getattr(labeler, "actor", None)
    if actor is not None:
        return Actor(int(actor))
    return Actor.SCRIPTED if labeler.source == "scripted" else Actor.HUMAN


def run_dagger(
    env_id: str,
    labeler: Labeler,
    gate: Gate,
    out_dir: str | Path,
    config: DaggerRunConfig | None = None,
    *,
    env: Any = None,
    env_kwargs: dict | None = None,
    resume: bool = False,
    train_fn: TrainFn | None = None,
    evaluate_fn: Callable[[Any, int], tuple[float, float]] | None = None,
    callback: Callable[[RoundStats], None] | None = None,
) -> DaggerRunResult:
    """Run DAgger to the end (round 0 demonstrations, then ``config.rounds`` learner rounds).

    Args:
        env_id: a registered gymnasium id.
        labeler: who labels and (with ``config.interventions``) takes over.
        gate: which learner-driven states to ask about.
        out_dir: where the session and the per-round results go (see the module docstring).
        env: an env to use instead of ``gym.make(env_id, **env_kwargs)`` (e.g. one an expert is
            bound to).
        resume: continue the run recorded in ``out_dir`` instead of refusing to overwrite it.
        train_fn: replaces :func:`retrain_policy` (``train_fn(paths, previous) -> policy``).
        evaluate_fn: ``(policy, seed) -> (mean_return, ci95 half-width)``; default
            ``ilcore.eval.evaluate`` with ``config.eval_episodes`` episodes.
        callback: called with each round's stats as soon as the round ends.
    """
    import gymnasium as gym

    from ilcore.data import SessionWriter

    config = config or DaggerRunConfig()
    out = Path(out_dir)
    rec_dir = out / RECORDINGS
    env_kwargs = dict(env_kwargs or {})
    if not resume and rec_dir.exists() and any(rec_dir.iterdir()):
        raise ConfigError(f"{out} already holds a DAgger run; pass --resume to continue it or choose another --out")
    if resume and not rec_dir.exists():
        raise ConfigError(f"there is no DAgger run to resume in {out}")
    out.mkdir(parents=True, exist_ok=True)
    env = env if env is not None else gym.make(env_id, **env_kwargs)
    if evaluate_fn is None:
        evaluate_fn = _default_evaluate(env_id, env_kwargs, config)
    stats: list[RoundStats] = _read_rounds(out) if resume else []

    start_round, done_in_round, policy, summary = 0, 0, None, None
    train = train_fn or (lambda paths, prev: retrain_policy(paths, config.retrain, previous=prev))
    if resume:
        summary = scan_session(rec_dir)
        labeler_restore = getattr(labeler, "restore", None)
        if labeler_restore is not None:
            labeler_restore(summary.labels, summary.human_seconds)
        if summary.last_round is not None:
            last = summary.last_round
            wanted = config.demo_episodes if last == 0 else config.episodes_per_round
            done_in_round = summary.episodes_per_round[last]
            start_round = last
            if done_in_round >= wanted and any(s.round == last for s in stats):
                start_round, done_in_round = last + 1, 0
            policy = train([rec_dir], None)
        stats = [s for s in stats if s.round < start_round]

    with SessionWriter(
        rec_dir, env_id=env_id, observation_space=env.observation_space, action_space=env.action_space,
        env_kwargs=env_kwargs, resume=resume,
    ) as writer:
        ctrl = DaggerController(
            env_id, writer, gate, policy=policy, beta_mix=config.beta_mix, retrain=config.retrain, train_fn=train,
            label_source=labeler.source, round=start_round, seed=config.seed,
            defer_unanswered=config.review, queue=summary.pending if (summary and config.review) else (),
            episodes_in_round=done_in_round,
        )
        if summary is not None and policy is not None:
            prev_obs = summary.learner_obs.get(start_round - 1, [])
            if prev_obs:
                ctrl.calibrate_on(prev_obs)
        total_labels = summary.labels if summary else 0
        total_seconds = summary.human_seconds if summary else 0.0
        for rnd in range(start_round, config.rounds + 1):
            n_eps = config.demo_episodes if rnd == 0 else config.episodes_per_round
            first = done_in_round if rnd == start_round else 0
            for i in range(first, n_eps):
                cap = config.demo_max_steps if rnd == 0 and config.demo_max_steps else config.max_episode_steps
                _run_episode(ctrl, env, labeler, config, _episode_seed(config.seed, rnd, i), cap)
            if config.review:
                _answer_queue(ctrl, labeler)
            result: RoundResult = ctrl.end_round(train=True)
            total_labels += result.labels
            total_seconds += result.human_seconds
            mean_ret, ci = evaluate_fn(ctrl.policy, config.seed + 1000 * (rnd + 1)) if config.eval_episodes else (math.nan, math.nan)
            s = RoundStats(
                round=rnd, labels=total_labels, human_seconds=total_seconds, mean_return=float(mean_ret),
                ci95=float(ci), query_rate=result.label_rate, gate_rate=result.gate_rate,
                episodes=result.episodes, steps=result.steps,
            )
            stats.append(s)
            _write_rounds(out, stats)
            if callback is not None:
                callback(s)
    return DaggerRunResult(stats, ctrl.policy, out)


def _run_episode(
    ctrl: DaggerController, env: Any, labeler: Labeler, config: DaggerRunConfig, seed: int, max_steps: int | None
) -> None:
    obs, _ = env.reset(seed=seed)
    labeler.begin_episode()
    ctrl.begin_episode(obs, seed=seed)
    history: list[Any] = [obs]
    driver = actor_of(labeler)
    t = 0
    while True:
        p = ctrl.propose(obs)
        label, reason, actor, action = None, None, Actor.LEARNER, p.learner_action
        if p.expert_drives:
            ctx = LabelContext(None, t, QueryReason.DEMO.value, TAKEOVER, history)
            label = labeler.label(obs, ctx)
            if label is None and p.learner_action is None:
                break  # nobody can drive a demonstration any more (budget spent)
            if label is not None:
                action, actor, reason = label, driver, QueryReason.DEMO.value
        elif config.interventions and labeler.takes_over(
            obs, p.learner_action, LabelContext(None, t, QueryReason.INTERVENTION.value, TAKEOVER, history)
        ):
            label = labeler.label(obs, LabelContext(None, t, QueryReason.INTERVENTION.value, TAKEOVER, history))
            if label is not None:
                action, actor, reason = label, driver, QueryReason.INTERVENTION.value
        elif p.query and not config.review:
            label = labeler.label(obs, LabelContext(None, t, p.reason or "", LIVE, history))
            reason = p.reason
        next_obs, reward, terminated, truncated, info = env.step(action)
        truncated = bool(truncated) or (max_steps is not None and t + 1 >= max_steps)
        ctrl.commit(
            action, actor, reward, terminated, truncated, next_obs, label=label, label_reason=reason,
            latency_ms=1000.0 * labeler.last_seconds if label is not None else 0.0, info=_scalar_info(info),
        )
        obs = next_obs
        history.append(obs)
        t += 1
        if terminated or truncated:
            break
    if ctrl.in_episode:
        if t == 0:
            ctrl.end_episode(discard=True)
        else:
            ctrl.end_episode()


def _answer_queue(ctrl: DaggerController, labeler: Labeler) -> None:
    for q in ctrl.review_queue():
        action = labeler.label(ctrl.query_observation(q), LabelContext(q.episode, q.step, q.reason, REVIEW, ()))
        if action is None:
            break  # budget spent: the rest stays queued (and on disk) for later
        ctrl.answer(q, action, latency_ms=1000.0 * labeler.last_seconds)


def _scalar_info(info: dict) -> dict:
    # Only scalar numbers are stored per step; env infos with arrays or strings are left out.
    return {k: float(v) for k, v in info.items() if isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_))}


def _episode_seed(seed: int, rnd: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, rnd, i]).generate_state(1)[0] % (2**31))


def _default_evaluate(env_id: str, env_kwargs: dict, config: DaggerRunConfig) -> Callable[[Any, int], tuple[float, float]]:
    def evaluate_policy(policy: Any, seed: int) -> tuple[float, float]:
        from ilcore.eval import evaluate

        r = evaluate(policy, env_id, episodes=config.eval_episodes, seed=seed, env_kwargs=env_kwargs or None)
        half = math.nan if r.ci95 is None else (float(r.ci95[1]) - float(r.ci95[0])) / 2.0
        return float(r.mean_return), half

    return evaluate_policy


def _read_rounds(out: Path) -> list[RoundStats]:
    p = out / ROUNDS_FILE
    if not p.exists():
        return []
    rows = json.loads(p.read_text())["rounds"]
    return [RoundStats(**{k: (math.nan if v is None else v) for k, v in row.items()}) for row in rows]


def _write_rounds(out: Path, stats: Sequence[RoundStats]) -> None:
    tmp = out / (ROUNDS_FILE + ".tmp")
    tmp.write_text(json.dumps({"rounds": [s.to_json() for s in stats]}, indent=1))
    os.replace(tmp, out / ROUNDS_FILE)
