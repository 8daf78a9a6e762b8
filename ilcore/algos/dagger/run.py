"""The blocking DAgger loop for scripts, tests and the CLI, built on :class:`DaggerController`.

Every step goes through the controller's one step rule (:meth:`DaggerController.plan_step` /
:meth:`~DaggerController.resolve`), every policy through the one retraining recipe
(:func:`train_next_policy`), and a resume through :func:`resume_controller` -- the same calls the
app makes, so a figure measured here describes a session in the app.

Layout of ``out_dir``: ``recordings/`` (the session, written as it happens, with each round's
policy in ``recordings/policies/v<NNN>``), ``dagger_run.json`` (the CLI's settings),
``dagger_rounds.json`` (per-round results, rewritten after each round) and the final policy
(``config.json``, ``weights.pt``) at the top, where ``ilcore eval --policy OUT`` finds it. A killed
run continues with ``run_dagger(..., resume=True)`` with no label lost.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ilcore.algos.dagger.controller import (
    DaggerController,
    Learner,
    RetrainConfig,
    RoundResult,
    TrainFn,
    _calibration_seed,
    calibration_states,
    query_mode_for,
    train_next_policy,
)
from ilcore.algos.dagger.gates import Gate
from ilcore.algos.dagger.readiness import Reference, readiness, recording_reference
from ilcore.algos.dagger.resume import Recovered, SessionScan, resume_controller, scan_session
from ilcore.algos.dagger.schedules import Constant, Schedule
from ilcore.data import SessionWriter
from ilcore.errors import ConfigError
from ilcore.eval import evaluate, make_env
from ilcore.fileio import write_json_atomic
from ilcore.labelers import REVIEW, LabelContext, Labeler
from ilcore.types import Actor

RECORDINGS = "recordings"
ROUNDS_FILE = "dagger_rounds.json"
PUBLIC_ROUND_KEYS = ("round", "labels", "human_seconds", "mean_return", "query_rate")

__all__ = [
    "DaggerRunConfig", "DaggerRunResult", "RoundLog", "RoundStats", "SessionScan", "actor_of", "episode_seed",
    "run_dagger", "scan_session",
]


@dataclass
class DaggerRunConfig:
    """Settings of a blocking DAgger run.

    rounds: learner rounds after the demonstration round (round 0)
    demo_episodes: round-0 episodes the labeller drives (every step a "demo" label)
    episodes_per_round: learner episodes per round
    beta_mix: per-round probability that the labeller drives a step (Ross 2011)
    interventions: ask ``labeler.takes_over`` before learner steps (HG-DAgger)
    query_mode: "live" (asked at the step), "deferred" (queued, answered in a review at the end
        of the round, reason "review") or "mixed" (live, the last round deferred), as in the app
    review: shorthand for ``query_mode="deferred"``
    eval_episodes: evaluation episodes of each round's policy (0: skip evaluation)
    max_episode_steps: cut episodes at this many steps (None: the env's own limit)
    demo_max_steps: cut round-0 demonstrations at this many steps (None: as other episodes)
    seed: seeds env resets, random draws and training
    retrain: how each round's policy is trained (and how many silent steps calibrate the gate)
    """

    rounds: int = 5
    demo_episodes: int = 1
    episodes_per_round: int = 2
    beta_mix: Schedule = Constant(0.0)
    interventions: bool = False
    query_mode: str = "live"
    review: bool = False
    eval_episodes: int = 10
    max_episode_steps: int | None = None
    demo_max_steps: int | None = None
    seed: int = 0
    retrain: RetrainConfig = field(default_factory=RetrainConfig)

    def __post_init__(self) -> None:
        if self.review:
            self.query_mode = "deferred"
        query_mode_for(self.query_mode, 0, self.rounds)


@dataclass(frozen=True)
class RoundStats:
    """One round of a session; ``labels`` and ``human_seconds`` are cumulative (demos included).

    mean_return / ci95: evaluation of the policy trained at the end of the round
    query_rate: asked / learner-driven steps in the round (nan when the learner never drove)
    label_rate: labels given in the round / states visited in the round
    agreement: after the round, the share of the last 50 answered live queries where the learner
        already did what the labeller answered (nan before any; ``ilcore.algos.dagger.agreement``)
    answers: answered live queries so far (the agreement's sample)
    score: ``mean_return`` as a share of the way from a random policy's return to the
        demonstrations' (nan without an evaluation or a whole demonstration;
        ``ilcore.algos.dagger.readiness``)
    ready: this and the round before it scored >= 95%: more labels are unlikely to help much
    """

    round: int
    labels: int
    human_seconds: float
    mean_return: float
    ci95: float
    query_rate: float
    label_rate: float
    episodes: int
    steps: int
    agreement: float = math.nan
    answers: int = 0
    score: float = math.nan
    ready: bool = False

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    def public(self) -> dict:
        """The row of ``ilcore dagger --json`` and of the app's ``summary.json`` ``rounds``."""
        full = self.to_json()
        return {k: full[k] for k in PUBLIC_ROUND_KEYS}


class RoundLog:
    """Per-round results of a session, kept in ``<folder>/dagger_rounds.json`` (rewritten atomically)."""

    def __init__(self, folder: str | Path, *, load: bool = True) -> None:
        self.path = Path(folder) / ROUNDS_FILE
        self.rows: list[RoundStats] = self._read() if load else []

    def _read(self) -> list[RoundStats]:
        if not self.path.is_file():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            rows = data.get("rounds") if isinstance(data, dict) else None
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError("'rounds' is not a list of objects")
            out = []
            for row in rows:
                # a key missing from an older log takes the field's default (nan for the required ones)
                values: dict[str, Any] = {
                    k: row[k] if row.get(k) is not None else (f.default if f.default is not MISSING else math.nan)
                    for k, f in RoundStats.__dataclass_fields__.items()}
                for k, v in values.items():
                    if k == "ready":
                        if not isinstance(v, bool):
                            raise ValueError(f"ready is {v!r}, not true or false")
                    elif isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise ValueError(f"{k} is {v!r}, not a number")
                for k in ("round", "labels", "episodes", "steps", "answers"):
                    if not isinstance(values[k], int) or values[k] < 0:
                        raise ValueError(f"{k} is {values[k]!r}, not a count")
                out.append(RoundStats(**values))
            return out
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ConfigError(f"{self.path} is not a readable round log ({exc}); move it aside to resume") from None

    def add(self, stats: RoundStats) -> RoundStats:
        """Keep a round's row (replacing one of the same round); returns it as kept, with ``ready``
        derived from its score and the earlier rounds' (the one place it is decided)."""
        earlier = [r for r in self.rows if r.round < stats.round]
        stats = replace(stats, ready=readiness([r.score for r in earlier] + [stats.score]).ready)
        self.rows = [r for r in self.rows if r.round != stats.round] + [stats]
        self.rows.sort(key=lambda r: r.round)
        self.save()
        return stats

    def set_return(self, round: int, mean_return: float, ci95: float, *, score: float = math.nan) -> None:
        """Fill in a round's evaluation when it arrives later (the app's background trainer)."""
        for r in [r for r in self.rows if r.round == round]:
            self.add(replace(r, mean_return=float(mean_return), ci95=float(ci95), score=float(score)))

    def truncate(self, before_round: int) -> None:
        self.rows = [r for r in self.rows if r.round < before_round]

    def public(self) -> list[dict]:
        return [r.public() for r in self.rows]

    def save(self) -> None:
        write_json_atomic(self.path, {"rounds": [r.to_json() for r in self.rows]}, indent=1)


def round_stats(ctrl: DaggerController, result: RoundResult, mean_return: float = math.nan,
                ci95: float = math.nan, *, score: float = math.nan) -> RoundStats:
    """The row for a round that just ended: cumulative totals from the controller (the one owner)."""
    t = ctrl.totals()
    return RoundStats(
        round=result.round, labels=t.labels, human_seconds=t.human_seconds, mean_return=float(mean_return),
        ci95=float(ci95), query_rate=result.query_rate, label_rate=result.label_rate, episodes=result.episodes,
        steps=result.steps, agreement=t.agreement, answers=t.answers, score=float(score),
    )


class _Scale:
    """The session's readiness scale (:mod:`ilcore.algos.dagger.readiness`), read from the
    recording once, when the first evaluation needs it (the demonstrations are recorded by then)."""

    def __init__(self, session_dir: Path, env_id: str, env_kwargs: dict, *, enabled: bool) -> None:
        self.session_dir, self.env_id, self.env_kwargs, self.enabled = session_dir, env_id, env_kwargs, enabled
        self.reference: Reference | None = None

    def score(self, mean_return: float) -> float:
        if not self.enabled or not math.isfinite(mean_return):
            return math.nan
        if self.reference is None:
            self.reference = recording_reference(self.session_dir, self.env_id, self.env_kwargs)
            if self.reference is None:
                self.enabled = False  # no whole demonstration: nothing to compare with
                return math.nan
        return self.reference.score(mean_return)


@dataclass
class DaggerRunResult:
    rounds: list[RoundStats]
    policy: Learner | None
    out_dir: Path
    recovered: Recovered | None = None


def actor_of(labeler: Labeler) -> Actor:
    """The Actor stored for steps a labeller drives: SCRIPTED for scripted experts, else HUMAN."""
    actor = getattr(labeler, "actor", None)
    if actor is not None:
        return Actor(int(actor))
    return Actor.SCRIPTED if labeler.source == "scripted" else Actor.HUMAN


def episode_seed(seed: int, rnd: int, i: int) -> int:
    """The env seed of episode ``i`` of round ``rnd`` (the app and the CLI reset alike)."""
    return int(np.random.SeedSequence([seed, rnd, i]).generate_state(1)[0] % (2**31))


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
    on_episode: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, Any], None] | None = None,
) -> DaggerRunResult:
    """Run DAgger to the end (round 0 demonstrations, then ``config.rounds`` learner rounds).

    Args:
        env_id: a registered gymnasium id.
        labeler: who labels and (with ``config.interventions``) takes over.
        gate: which learner-driven states to ask about.
        out_dir: where the session and the per-round results go (see the module docstring).
        env: an env to use instead of ``make_env(env_id, env_kwargs)`` (e.g. one an expert is
            bound to).
        resume: continue the run recorded in ``out_dir`` instead of refusing to overwrite it.
        train_fn: replaces the recipe (``train_fn(paths, previous) -> policy``; tests' fakes).
        evaluate_fn: ``(policy, seed) -> (mean_return, ci95 half-width)``; default
            ``ilcore.eval.evaluate`` with ``config.eval_episodes`` episodes.
        callback: called with each round's stats as soon as the round ends.
        on_episode: called with (round, steps) after each episode (progress bars).
        on_epoch: called with (policy version, :class:`~ilcore.algos.bc.EpochReport`) after each
            training epoch of the built-in recipe (progress bars).
    """
    config = config or DaggerRunConfig()
    out = Path(out_dir)
    rec_dir = out / RECORDINGS
    env_kwargs = dict(env_kwargs or {})
    if not resume and rec_dir.exists() and any(rec_dir.iterdir()):
        raise ConfigError(f"{out} already holds a DAgger run; pass --resume to continue it or choose another --out")
    if resume and not rec_dir.exists():
        raise ConfigError(f"there is no DAgger run to resume in {out}")
    env = env if env is not None else make_env(env_id, env_kwargs)
    out.mkdir(parents=True, exist_ok=True)
    if evaluate_fn is None:
        evaluate_fn = _default_evaluate(env_id, env_kwargs, config)
    log = RoundLog(out, load=resume)
    scale = _Scale(rec_dir, env_id, env_kwargs, enabled=bool(config.eval_episodes))

    def calibrate_fn(policy: Learner) -> list[Any]:
        version = int(getattr(policy, "version", 0))
        return calibration_states(policy, env, config.retrain.calibration_steps,
                                  seed=_calibration_seed(config.seed, version), max_episode_steps=config.max_episode_steps)

    common: dict[str, Any] = dict(
        beta_mix=config.beta_mix, retrain=config.retrain, train_fn=train_fn, label_source=labeler.source,
        labeller_actor=actor_of(labeler), query_mode=config.query_mode, rounds=config.rounds, seed=config.seed,
        defer_unanswered=True,
        calibrate_fn=calibrate_fn if (train_fn is not None and config.retrain.calibration_steps > 0) else None,
    )
    recovered: Recovered | None = None
    with SessionWriter(
        rec_dir, env_id=env_id, observation_space=env.observation_space, action_space=env.action_space,
        env_kwargs=env_kwargs, resume=resume,
    ) as writer:
        if resume:
            ctrl, recovered = resume_controller(env_id, writer, gate, **common)
            restore = getattr(labeler, "restore", None)
            if restore is not None:
                restore(recovered.labels, recovered.human_seconds)
            log.truncate(ctrl.round)
            if ctrl.round > 0 and (ctrl.policy is None or (ctrl.policy_version or 0) < ctrl.round):
                _train_round(ctrl, config, env_id, env_kwargs, env, train_fn, version=ctrl.round, on_epoch=on_epoch)  # killed before it was saved
            if ctrl.round > 0 and not any(r.round == ctrl.round - 1 for r in log.rows):
                mean_ret, ci = _evaluate(evaluate_fn, ctrl.policy, config, ctrl.round - 1)
                t = ctrl.totals()
                log.add(RoundStats(ctrl.round - 1, t.labels, t.human_seconds, mean_ret, ci, math.nan, math.nan, 0, 0,
                                   score=scale.score(mean_ret)))
        else:
            ctrl = DaggerController(env_id, writer, gate, **common)
        for rnd in range(ctrl.round, config.rounds + 1):
            n_eps = config.demo_episodes if rnd == 0 else config.episodes_per_round
            cap = config.demo_max_steps if rnd == 0 and config.demo_max_steps else config.max_episode_steps
            for i in range(ctrl.episodes_in_round, n_eps):
                steps = run_episode(ctrl, env, labeler, episode_seed(config.seed, rnd, i), cap,
                                    interventions=config.interventions)
                if on_episode is not None:
                    on_episode(rnd, steps)
            answer_queue(ctrl, labeler)
            result: RoundResult = ctrl.end_round(train=False)
            _train_round(ctrl, config, env_id, env_kwargs, env, train_fn, version=rnd + 1, on_epoch=on_epoch)
            mean_ret, ci = _evaluate(evaluate_fn, ctrl.policy, config, rnd)
            s = log.add(round_stats(ctrl, result, mean_ret, ci, score=scale.score(mean_ret)))
            if callback is not None:
                callback(s)
    save = getattr(ctrl.policy, "save", None)
    if save is not None and train_fn is None:
        save(out)  # the final policy where `ilcore eval --policy OUT` looks
    return DaggerRunResult(log.rows, ctrl.policy, out, recovered)


def _train_round(ctrl: DaggerController, config: DaggerRunConfig, env_id: str, env_kwargs: dict, env: Any,
                 train_fn: TrainFn | None, *, version: int,
                 on_epoch: Callable[[int, Any], None] | None = None) -> None:
    rec_dir = Path(ctrl.writer.path)
    if train_fn is not None:
        policy = train_fn([rec_dir], ctrl.policy)
        if hasattr(policy, "version"):
            policy.version = version
        ctrl.set_policy(policy)
        return
    trained = train_next_policy(
        rec_dir, config.retrain, version=version, env_id=env_id, env_kwargs=env_kwargs, previous=ctrl.policy_path,
        max_episode_steps=config.max_episode_steps, seed=config.seed, env=env,
        callback=None if on_epoch is None else (lambda report: on_epoch(version, report)),
    )
    ctrl.install_saved(trained.path)


def _evaluate(evaluate_fn: Callable[[Any, int], tuple[float, float]], policy: Any, config: DaggerRunConfig,
              rnd: int) -> tuple[float, float]:
    if not config.eval_episodes:
        return math.nan, math.nan
    return evaluate_fn(policy, config.seed + 1000 * (rnd + 1))


def run_episode(ctrl: DaggerController, env: Any, labeler: Labeler, seed: int, max_steps: int | None, *,
                interventions: bool = False) -> int:
    """One recorded episode with ``labeler`` answering at once; returns its length."""
    obs, _ = env.reset(seed=seed)
    labeler.begin_episode()
    ctrl.begin_episode(obs, seed=seed)
    history: list[Any] = [obs]
    t = 0
    while True:
        takeover: Any = False
        if interventions:
            ctx = LabelContext(None, t, "intervention", "takeover", history)
            takeover = lambda learner_action, o=obs, c=ctx: labeler.takes_over(o, learner_action, c)  # noqa: E731
        plan = ctrl.plan_step(obs, takeover=takeover)
        answer = labeler.label(obs, LabelContext(None, t, plan.reason or "", plan.ask, history)) if plan.ask else None
        outcome = ctrl.resolve(plan, answer)
        if outcome is None:
            break  # nobody can drive a demonstration any more (budget spent)
        next_obs, reward, terminated, truncated, info = env.step(outcome.action)
        truncated = bool(truncated) or (max_steps is not None and t + 1 >= max_steps)
        ctrl.commit_outcome(outcome, reward, terminated, truncated, next_obs,
                            latency_ms=1000.0 * labeler.last_seconds, info=scalar_info(info))
        obs = next_obs
        history.append(obs)
        t += 1
        if terminated or truncated:
            break
    if ctrl.in_episode:
        ctrl.end_episode(discard=t == 0)
    return t


def answer_queue(ctrl: DaggerController, labeler: Labeler, limit: int | None = None) -> int:
    """Answer the review queue (highest disagreement first) until the labeller declines; returns answers."""
    n = 0
    for q in ctrl.review_queue()[:limit]:
        action = labeler.label(ctrl.query_observation(q), LabelContext(q.episode, q.step, q.reason, REVIEW, ()))
        if action is None:
            break  # budget spent: the rest stays queued (and on disk) for later
        ctrl.answer(q, action, latency_ms=1000.0 * labeler.last_seconds)
        n += 1
    return n


def scalar_info(info: dict) -> dict:
    """Only scalar numbers are stored per step; env infos with arrays or strings are left out."""
    return {k: float(v) for k, v in info.items() if isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_))}


def _default_evaluate(env_id: str, env_kwargs: dict, config: DaggerRunConfig) -> Callable[[Any, int], tuple[float, float]]:
    def evaluate_policy(policy: Any, seed: int) -> tuple[float, float]:
        r = evaluate(policy, env_id, episodes=config.eval_episodes, seed=seed, env_kwargs=env_kwargs or None)
        half = math.nan if r.ci95 is None else (float(r.ci95[1]) - float(r.ci95[0])) / 2.0
        return float(r.mean_return), half

    return evaluate_policy
