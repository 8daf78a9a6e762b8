"""The pygame-free glue between the app and ilcore: env, recording, learner, gate, queue, trainer.

Everything the app does to data is an ilcore call made here, so tests and scripts can drive a
whole session without a window. The session's own progress (which stage of the plan, round,
policy version, review queue, per-round returns) lives in ``<session>/app_state.json``, written
atomically after every change that matters, so ``--resume`` continues where a killed app stopped.
"""

from __future__ import annotations

import json
import math
import queue
import shlex
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from app.trainer import TrainerClient, TrainJob, _run_job
from ilcore import spaces as ispaces
from ilcore.algos.dagger import DaggerController, episode_seed, resume_controller
from ilcore.algos.dagger.controller import batch_one, query_mode_for
from ilcore.algos.dagger.options import DaggerOptions
from ilcore.algos.dagger.readiness import Readiness, readiness, reference_from_json
from ilcore.algos.dagger.run import RoundLog, round_stats
from ilcore.data import SessionWriter, open_recording
from ilcore.envs.particles import ENV_ID as ONESHOT_ENV_ID  # the family `ilcore train oneshot` trains on
from ilcore.envs.particles import describe_task, task_split
from ilcore.errors import ConfigError
from ilcore.eval import make_env
from ilcore.experts import make_expert
from ilcore.experts.particles import ParticleSequenceExpert
from ilcore.fileio import write_json_atomic
from ilcore.labelers import LIVE, REVIEW, LabelContext, SimulatedPerson
from ilcore.plots import save_labels_curve
from ilcore.types import Actor

STATE_FILE = "app_state.json"
REPLAY_FRAMES = 24  # env steps kept before a deferred query (one frame each), for the review replay
REPLAY_WIDTH = 300  # replay frames are averaged down to at most this width to keep the queue small
# Settings of sessions saved before the option names were shared with `ilcore dagger`.
_RENAMED = {"gate": "query", "beta": "beta_mix"}


@dataclass
class SessionSettings:
    """Everything that shapes a session; saved with it so --resume rebuilds the same thing.

    The learner and query options (query, beta_schedule, beta_mix, target_rate, ensemble, hidden,
    epochs, warm_start, interventions, iwr, query_mode, calibration_steps, seed) are
    :class:`ilcore.algos.dagger.options.DaggerOptions`, named and defaulted as in ``ilcore dagger``
    (only ``query_mode`` defaults to "mixed" here: the last round is answered in review).
    """

    env_id: str = "CartPole-v1"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    demo_episodes: int = 3  # the plan's demonstration stage ends after this many (NEXT ends it early)
    rounds: int = 3  # DAgger rounds
    episodes_per_round: int = 2
    query_mode: str = "mixed"  # live: pause and ask; deferred: queue for review; mixed: live, deferred in the last round
    query: str = "ensemble"  # all, beta, ensemble, novelty, ensemble+novelty, none (interventions only)
    beta_schedule: str = "exp:1,0.5"  # beta-querying schedule of the beta gate
    beta_mix: str = "0"  # probability per step that the person drives instead of the learner
    target_rate: float = DaggerOptions.target_rate  # fraction of learner-driven states the threshold gates ask about
    ensemble: int = 5  # members in the learner ensemble (disagreement needs >= 2)
    epochs: int = 30
    hidden: tuple[int, ...] = (64, 64)
    warm_start: bool = False
    interventions: bool = False  # the simulated person takes over when the learner keeps disagreeing
    iwr: bool = False
    calibration_steps: int = 1000
    eval_episodes: int = 10  # evaluation episodes of each trained policy (in the trainer process)
    review_limit: int = 40  # at most this many deferred states per round, highest disagreement first
    watch_episodes: int = 2
    max_episode_steps: int | None = None  # cap episode length (CartPole's 500 steps is long to watch)
    seed: int = 0
    simulated: bool = False  # the engine's simulated person plays the human's part
    watch_only: bool = False  # demos saved observation-only (no actions, no labels), then a summary: no DAgger

    def __post_init__(self) -> None:
        if self.demo_episodes < 0 or self.rounds < 0 or self.episodes_per_round < 1:
            raise ConfigError("demo episodes and rounds must be >= 0 and episodes per round >= 1")
        if self.eval_episodes < 0:
            raise ConfigError(f"eval episodes must be >= 0, got {self.eval_episodes}")
        self.hidden = tuple(self.options().hidden)  # also checks every learner/query option

    def options(self) -> Any:
        """The learner and query options, as ``ilcore dagger`` reads them."""
        return DaggerOptions.from_mapping(asdict(self))

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> "SessionSettings":
        known = {f.name for f in fields(cls)}
        values = {_RENAMED.get(k, k): v for k, v in saved.items()}
        if isinstance(values.get("beta_mix"), (int, float)):
            values["beta_mix"] = str(values["beta_mix"])
        try:
            return cls(**{k: v for k, v in values.items() if k in known})
        except TypeError as exc:
            raise ConfigError(f"the saved session settings do not fit this version of the app ({exc})") from None

    def plan(self) -> list[str]:
        """The stages NEXT walks through: demo, train, (dagger, review, train) x rounds, watch, summary.

        Each DAgger round ends when its review (of the states it deferred) is left, as ``ilcore
        dagger`` answers its queue before the round's retraining. A watch-only session is only
        watch_only, summary: DAgger needs the action labels it does not keep."""
        if self.watch_only:
            return ["watch_only", "summary"]
        stages = ["demo", "train"]
        for k in range(1, self.rounds + 1):
            stages += [f"dagger:{k}", f"review:{k}", "train"]
        stages += ["watch", "summary"]
        return stages

    def query_mode_for(self, round: int) -> str:
        return query_mode_for(self.query_mode, round, self.rounds)


@dataclass
class SessionState:
    """The app's own progress, saved in app_state.json. The counters (labels, human seconds,
    rounds, queries) are not here: the DAgger controller owns them and rebuilds them from the
    session folder on resume (so they equal ``ilcore info --json``)."""

    settings: dict[str, Any] = field(default_factory=dict)
    stage: int = 0  # index into settings.plan()
    policy_version: int = 0  # the last trained version (policies/v<NNN>)
    labels_at_last_train: int = -1  # skip a training stage when nothing new was labelled since
    watch_only_seconds: float = 0.0  # time spent driving watch-only demos (they carry no labels)
    episodes: list[dict[str, Any]] = field(default_factory=list)  # id, round, kind, return, length
    evals: list[dict[str, Any]] = field(default_factory=list)  # version, labels, eval_return, ci95, round

    @classmethod
    def from_saved(cls, saved: Any, where: Path) -> "SessionState":
        if not isinstance(saved, dict):
            raise ConfigError(f"{where} is not a JSON object; move it aside to start the app state afresh")
        known = {f.name for f in fields(cls)}
        try:
            state = cls(**{k: v for k, v in saved.items() if k in known})
            if not isinstance(state.settings, dict) or not isinstance(state.episodes, list) or not isinstance(state.evals, list):
                raise TypeError("settings, episodes or evals of the wrong type")
            if not isinstance(state.stage, int) or isinstance(state.stage, bool) or state.stage < 0:
                raise TypeError(f"stage is {state.stage!r}")
            if not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in state.episodes):
                raise TypeError("an episode entry is not an object with an id")
        except TypeError as exc:
            raise ConfigError(f"{where} does not hold an app state ({exc}); move it aside to start the app state afresh") from None
        return state


class Session:
    """One session folder: env + writer + DAgger controller + background trainer.

    The controller is the one owner of the session's progress (round, labels, human seconds,
    queries, review queue, installed policy); modes change it only through the verbs here
    (``label`` steps via the driver, ``answer_review``, ``unanswer_review``, ``retract_label``,
    ``discard_last_episode``, ``end_round``) and read it through :meth:`totals`.
    """

    def __init__(self, out: str | Path, settings: SessionSettings | None = None, *, resume: bool = False) -> None:
        self.path = Path(out)
        state_file = self.path / STATE_FILE
        if resume:
            if not state_file.is_file():
                raise ConfigError(f"{self.path} is not an app session to resume (no {STATE_FILE})")
            try:
                saved_state = json.loads(state_file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise ConfigError(f"{state_file} is not readable ({type(exc).__name__}); move it aside to resume") from None
            self.state = SessionState.from_saved(saved_state, state_file)
            self.settings = SessionSettings.from_saved(dict(self.state.settings))
            if settings is not None:
                if settings.watch_only and not self.settings.watch_only:
                    # Observation-only episodes beside labelled ones would leave DAgger and BC unlabelled steps.
                    raise ConfigError(f"{self.path} is a DAgger session that records actions, so --watch-only cannot add "
                                      "observation-only episodes to it; give --watch-only a new --out folder")
                self.settings.simulated = settings.simulated
        else:
            if state_file.exists():
                raise ConfigError(f"{self.path} already holds a session; use --resume {self.path} or another --out")
            self.settings = settings or SessionSettings()
            self.state = SessionState(settings=asdict(self.settings))
        s = self.settings
        env = make_app_env(s.env_id, s.env_kwargs, s.max_episode_steps)
        self.env = env
        self.fps = int(env.metadata.get("render_fps") or 30)
        self.writer = SessionWriter(
            self.path,
            env_id=s.env_id,
            observation_space=env.observation_space,
            action_space=env.action_space,
            env_kwargs=s.env_kwargs,
            resume=resume,
            background=True,  # writing a finished episode must not stall frames
        )
        try:
            self.label_source = "simulated" if s.simulated else "human"
            self.person_actor = Actor.SCRIPTED if s.simulated else Actor.HUMAN
            self.controller, self.recovered = self._make_controller(resume)
            self.rounds = RoundLog(self.path, load=resume)
            self.rounds.truncate(self.controller.round)
        except BaseException:
            self.writer.close()  # a refused resume must not keep the session locked
            self.env.close()
            raise
        if resume:
            # The recording is the truth: an episode whose write the kill interrupted is not in it.
            on_disk = set(self.writer.episode_ids())
            self.state.episodes = [e for e in self.state.episodes if e["id"] in on_disk]
        # replay clips for deferred states: (episode id, step) -> downscaled frames before it
        self.replays: dict[tuple[str, int], list[np.ndarray]] = {}
        self.trainer = TrainerClient()
        # Stages move on by themselves only for a simulated person or an explicit --autopilot.
        self.autopilot = bool(s.simulated)
        self.attention_time = 0.0  # the person's clock: not paused, not idle (the manager runs it)
        self.policy_notice = ""  # e.g. a new policy evaluates worse than the one it replaced
        self._previous: dict[str, Any] | None = None  # the policy a worse one replaced (K brings it back)
        self._unrecorded = 0  # watch / watch-only episodes (seeded apart from the recorded ones)
        self._observer: Any = None  # the EpisodeRecorder of the watch-only episode in progress
        self.save()

    def _make_controller(self, resume: bool) -> tuple[Any, Any]:
        s = self.settings
        opts = s.options()
        common: dict[str, Any] = dict(
            beta_mix=opts.beta_mix_schedule(), retrain=opts.retrain(), label_source=self.label_source,
            labeller_actor=self.person_actor, query_mode=s.query_mode, rounds=s.rounds, seed=s.seed,
            defer_unanswered=True,
        )
        if resume:
            return resume_controller(s.env_id, self.writer, opts.gate(), **common)
        return DaggerController(s.env_id, self.writer, opts.gate(), **common), None

    # --- persistence -----------------------------------------------------------------------
    def save(self) -> None:
        """Write app_state.json atomically (temp file + os.replace), so a kill never leaves half of it."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / STATE_FILE, asdict(self.state), indent=1, default=_json_default)

    def close(self) -> None:
        try:
            self.save()
        finally:
            self.trainer.close()
            try:
                self.writer.flush()
            finally:
                self.writer.close()
                self.env.close()

    # --- what the screen shows ---------------------------------------------------------------
    def totals(self) -> Any:
        """The controller's counters (labels, human seconds, round, queries): what ilcore info reports."""
        return self.controller.totals()

    @property
    def policy(self) -> Any:
        return self.controller.policy

    @property
    def round(self) -> int:
        return self.controller.round

    @property
    def round_episodes(self) -> int:
        """Episodes finished in the running stage (watch-only: the observation-only ones saved)."""
        if self.settings.watch_only:
            return len([e for e in self.state.episodes if e["kind"] == "watch_only" and not e.get("discarded")])
        return self.controller.episodes_in_round

    @property
    def human_seconds(self) -> float:
        if self.settings.watch_only:
            return self.state.watch_only_seconds
        return self.controller.totals().human_seconds

    @property
    def query_rate(self) -> float | None:
        """asked / learner-driven steps of the running round (the one definition, as in ilcore dagger);
        before the learner has driven in it, the last finished round's."""
        rate = self.controller.totals().round_query_rate
        if rate is None:
            rates = [r["query_rate"] for r in self.rounds.public() if r["query_rate"] is not None]
            rate = rates[-1] if rates else None
        return rate

    @property
    def gate(self) -> Any:
        return self.controller.gate

    # --- env -------------------------------------------------------------------------------
    def reset_env(self, *, recorded: bool = True) -> Any:
        """Reset for a new episode; recorded episodes are seeded as ``ilcore dagger`` seeds them."""
        if recorded and not self.settings.watch_only:
            self._episode_seed = episode_seed(self.settings.seed, self.controller.round, self.controller.episodes_in_round)
        else:
            self._unrecorded += 1
            self._episode_seed = episode_seed(self.settings.seed, 1_000_000 + len(self.state.episodes), self._unrecorded)
        obs, _ = self.env.reset(seed=self._episode_seed)
        return obs

    def render(self) -> np.ndarray | None:
        frame = self.env.render()
        return None if frame is None else np.asarray(frame)

    def noop_action(self) -> Any:
        space = self.env.action_space
        if isinstance(space, gym.spaces.Discrete):
            return np.int64(space.start)
        return np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high).astype(space.dtype)

    # --- learner ---------------------------------------------------------------------------
    def load_policy(self, path: str | Path) -> None:
        """Install a saved policy (and calibrate the gate on its saved calibration states)."""
        self.controller.install_saved(path)

    def propose(self, obs: Any) -> tuple[Any, float]:
        """The learner's action at ``obs`` and its ensemble disagreement (watch mode; not recorded)."""
        import torch  # the window process starts without torch; a policy is here only once trained

        with torch.no_grad():
            out = self.policy.predict_ensemble(batch_one(obs))
        return ispaces.index(out.action, 0), float(np.asarray(out.uncertainty).reshape(-1)[0])

    def end_round(self) -> None:
        """Close the controller's round and note it in the round log (its evaluation arrives with
        the policy the background trainer makes from it)."""
        if self.controller.in_episode:
            self.controller.end_episode(discard=True)
        result = self.controller.end_round(train=False)
        self.rounds.add(round_stats(self.controller, result))
        self.save()

    # --- recording -------------------------------------------------------------------------
    def begin_episode(self, obs: Any) -> None:
        self.controller.begin_episode(obs, seed=self._episode_seed)

    def finish_episode(self, *, kind: str, total_return: float, length: int, labels: int) -> str:
        episode_id = self.controller.end_episode()
        assert episode_id is not None
        self.state.episodes.append(
            {"id": episode_id, "round": self.controller.round, "kind": kind, "return": float(total_return), "length": int(length), "labels": int(labels)}
        )
        self.save()
        return episode_id

    def discard_last_episode(self, kind: str) -> str | None:
        for i in range(len(self.state.episodes) - 1, -1, -1):
            ep = self.state.episodes[i]
            if ep["kind"] == kind and not ep.get("discarded"):
                self.writer.flush()  # the background write must land before it can be moved aside
                if kind == "watch_only":
                    self.writer.discard_episode(ep["id"])
                else:
                    self.controller.discard_episode(ep["id"])
                ep["discarded"] = True
                self.save()
                return ep["id"]
        return None

    def retract_label(self, episode: str | None, step: int) -> None:
        """Undo the latest label at (episode, step); ``episode=None``: the running episode."""
        self.controller.retract(episode, step)
        self.save()

    # --- watch-only recording: observations without actions -------------------------------
    def begin_observation_episode(self, obs: Any) -> None:
        """Start an observation-only episode (watch-only demos): it will hold no actions and no labels.

        Closing the app before its first step leaves no file (the writer drops step-less episodes)."""
        self.discard_observation_episode()
        self._observer = self.writer.begin_episode(
            obs, seed=self._episode_seed, round=0,
            attrs={"watch_only": True, "demonstrator": self.label_source},
        )

    def observe_step(self, next_obs: Any, reward: float, terminated: bool, truncated: bool) -> int:
        """Record one step of the running watch-only episode as an observation only; returns its index.

        The reward is kept (it is what the env showed, and it gives the summary a return); the
        action that caused the step is not."""
        assert self._observer is not None, "begin_observation_episode first"
        return self._observer.observe(next_obs, reward=reward, terminated=terminated, truncated=truncated)

    def note_watch_only_seconds(self, seconds: float) -> None:
        """Time spent driving a watch-only demo (it carries no labels to hold the time)."""
        self.state.watch_only_seconds += float(seconds)

    def finish_observation_episode(self, *, kind: str, total_return: float, length: int) -> str:
        """Write the running watch-only episode (in the background) and note it in app_state.json."""
        assert self._observer is not None, "begin_observation_episode first"
        episode_id = self._observer.finish()
        self._observer = None
        self.state.episodes.append(
            {"id": episode_id, "round": 0, "kind": kind, "return": float(total_return), "length": int(length), "labels": 0}
        )
        self.save()
        return episode_id

    def discard_observation_episode(self) -> None:
        """Drop the unfinished watch-only episode (restart, leaving the mode)."""
        if self._observer is not None:
            self._observer.discard()
            self._observer = None

    def next_commands(self) -> list[tuple[str, str]]:
        """(what it does, exact command) for learning from this session's observation-only episodes."""
        data = shlex.quote(str(self.path))
        name = self.path.name or "session"
        return [
            ("clone a policy without actions (BCO)", f"ilcore train bco --data {data} --out {shlex.quote(f'runs/{name}-bco')}"),
            ("or learn a time-contrastive embedding (a reward for RL)", f"ilcore train tcn --data {data} --out {shlex.quote(f'runs/{name}-tcn')}"),
            ("look at the recording", f"ilcore info {data}"),
        ]

    def write_watch_only_summary(self) -> dict[str, Any]:
        """summary.json of a watch-only session, counted from the recording itself (the truth)."""
        self.writer.flush()  # the last episode's background write must land before it is counted
        episodes = observation_only = steps = 0
        returns: list[float] = []
        for ep in open_recording(self.path).episodes():
            episodes += 1
            observation_only += ep.actions is None
            steps += ep.length
            if ep.rewards is not None and not np.isnan(ep.total_return):
                returns.append(ep.total_return)
        summary = {
            "env_id": self.settings.env_id,
            "watch_only": True,
            "path": str(self.path),
            "episodes": episodes,
            "observation_only_episodes": observation_only,
            "steps": steps,
            "mean_return": float(np.mean(returns)) if returns else None,
            "human_seconds": round(self.state.watch_only_seconds, 2),
            "next": [cmd for _, cmd in self.next_commands()],
        }
        write_json_atomic(self.path / "summary.json", summary, indent=1, default=_json_default)
        return summary

    # --- review ----------------------------------------------------------------------------
    def review_queue(self) -> list[Any]:
        """Deferred states (ilcore Query), highest disagreement first, at most ``review_limit`` per round."""
        per_round: dict[int, int] = {}
        out = []
        for q in self.controller.review_queue():
            per_round[q.round] = per_round.get(q.round, 0) + 1
            if per_round[q.round] <= self.settings.review_limit:
                out.append(q)
        return out

    def query_observation(self, query: Any) -> Any:
        """The observation a review-queue item asks about."""
        return self.controller.query_observation(query)

    def answer_review(self, query: Any, action: Any, *, latency_ms: float) -> Any:
        label = self.controller.answer(query, action, latency_ms=latency_ms)  # saved at once (fsync)
        self.save()
        return label

    def unanswer_review(self, query: Any) -> None:
        """Undo a review answer: its label is retracted and the state is back in the queue."""
        self.controller.unanswer(query)
        self.save()

    # --- training --------------------------------------------------------------------------
    def _job(self, version: int) -> TrainJob:
        s = self.settings
        return TrainJob(
            session_dir=str(self.path), version=version, env_id=s.env_id, env_kwargs=dict(s.env_kwargs),
            retrain=s.options().retrain(),
            previous=None if self.controller.policy_path is None else str(self.controller.policy_path),
            max_episode_steps=s.max_episode_steps, eval_episodes=s.eval_episodes, seed=s.seed,
            after_round=self.controller.round - 1,
        )

    def start_training(self) -> int:
        """Submit a training job on everything recorded so far; returns the version it will publish."""
        self.writer.flush()
        version = self.state.policy_version + 1
        self.state.labels_at_last_train = self.totals().labels
        self.trainer.submit(self._job(version))
        return version

    def train_blocking(self) -> dict[str, Any]:
        """Train the next policy here and now with the trainer's own job code (scripts, tests, benchmarks)."""
        self.writer.flush()
        version = self.state.policy_version + 1
        self.state.labels_at_last_train = self.totals().labels
        msg = _run_job(self._job(version), queue.Queue())
        self._install_trained(msg)
        return msg

    def poll_training(self) -> list[dict[str, Any]]:
        """Fold finished jobs in: swap the new policy in and remember its evaluation."""
        messages = self.trainer.poll()
        for msg in messages:
            if msg["kind"] == "done":
                self._install_trained(msg)
        return messages

    def _install_trained(self, msg: dict[str, Any]) -> None:
        # The saved policy and its calibration states: the gate is calibrated before it asks.
        current = self._installed_eval()
        previous_path = self.controller.policy_path
        self.controller.install_saved(msg["path"])
        new = msg.get("eval_return")
        if current is not None and new is not None and previous_path is not None and new < current["eval_return"]:
            self._previous = {"path": str(previous_path), **current}
            self.policy_notice = (f"v{msg['version']} evaluates worse than v{current['version']} ({new:.1f} vs "
                                  f"{current['eval_return']:.1f}): K keeps v{current['version']}")
        else:
            self._previous, self.policy_notice = None, ""
        self.state.policy_version = int(msg["version"])
        reference = reference_from_json(msg.get("reference"))
        score = None if new is None or reference is None else reference.score(float(new))
        self.state.evals.append(
            {"version": msg["version"], "labels": msg.get("labels"), "eval_return": msg.get("eval_return"),
             "ci95": msg.get("eval_ci95"), "valid_loss": msg.get("valid_loss"), "round": msg.get("after_round"),
             "score": score if score is None or math.isfinite(score) else None}
        )
        if msg.get("eval_return") is not None and msg.get("after_round") is not None:
            ci = msg.get("eval_ci95")
            self.rounds.set_return(int(msg["after_round"]), float(msg["eval_return"]), float("nan") if ci is None else float(ci),
                                   score=math.nan if score is None else score)
        self.save()

    def readiness(self) -> Readiness:
        """Whether more labels are likely to help (:mod:`ilcore.algos.dagger.readiness`): the scores of
        the trained policies' evaluations, oldest first."""
        scores = [math.nan if e.get("score") is None else float(e["score"])
                  for e in self.state.evals if e.get("eval_return") is not None]
        return readiness(scores)

    def _installed_eval(self) -> dict[str, Any] | None:
        """The evaluation of the installed policy (None when it has none)."""
        version = self.controller.policy_version
        rows = [e for e in self.state.evals if e.get("version") == version and e.get("eval_return") is not None]
        return {"version": version, "eval_return": float(rows[-1]["eval_return"])} if rows else None

    def keep_previous_policy(self) -> bool:
        """Put back the policy a worse-evaluating one replaced (the K key); False when there is none."""
        if self._previous is None:
            return False
        replaced = self.controller.policy_version
        self.controller.install_saved(self._previous["path"])
        self.state.evals.append({"version": self._previous["version"], "kept_over": replaced,
                                 "eval_return": None, "labels": None, "round": self.controller.round})
        self.policy_notice = f"kept v{self._previous['version']}; v{replaced} stays saved in policies/"
        self._previous = None
        self.save()
        return True

    # --- summary ---------------------------------------------------------------------------
    def returns_per_round(self) -> dict[int, float]:
        out: dict[int, list[float]] = {}
        for ep in self.state.episodes:
            if not ep.get("discarded"):
                out.setdefault(int(ep["round"]), []).append(float(ep["return"]))
        return {k: float(np.mean(v)) for k, v in sorted(out.items())}

    def write_summary(self) -> dict[str, Any]:
        """summary.json and summary.png (return vs labels) in the session folder. ``rounds`` has the
        schema of ``ilcore dagger --json`` (labels cumulative, demonstrations included)."""
        self.writer.flush()
        t = self.totals()
        summary = {
            "env_id": self.settings.env_id,
            "labels": t.labels,
            "human_seconds": round(t.human_seconds, 2),
            "query_rate": self.query_rate,
            "rounds": self.rounds.public(),
            "returns_per_round": self.returns_per_round(),
            "evals": self.state.evals,
            "episodes": t.episodes,
        }
        write_json_atomic(self.path / "summary.json", summary, indent=1, default=_json_default)
        points = [(e["labels"], e["eval_return"]) for e in self.state.evals if e.get("eval_return") is not None]
        if points:
            save_labels_curve([p[0] for p in points], [p[1] for p in points], self.path / "summary.png",
                              title=f"{self.settings.env_id}: return vs labels", xlabel="labelled states used for training")
        return summary


# --- the simulated person's engine parts ---------------------------------------------------


def simulated_person(session: Session) -> Any:
    """The engine's simulated person for ``session``'s env: its scripted expert with a person's
    delay, noise and budget (``ilcore.labelers.SimulatedPerson``), seeded with the session."""
    s = session.settings
    expert = make_expert(s.env_id, env=session.env, **s.env_kwargs)
    return SimulatedPerson(expert, session.env.action_space, seed=s.seed)


def ask_labeler(labeler: Any, obs: Any, reason: str = "demo") -> Any:
    """``labeler``'s answer at ``obs``, asked as the session asks (``reason`` "review" in review,
    live otherwise); its scripted expert's action when it declines (its budget is spent) or takes
    no context."""
    try:
        ctx = LabelContext(episode=None, step=0, reason=reason, mode=REVIEW if reason == "review" else LIVE,
                           history=[obs])
        action = labeler.label(obs, ctx)
    except TypeError:
        action = None
    if action is None:
        action = labeler.expert.act(obs)
    return action


# --- one-shot: `python -m app --oneshot RUN` ---------------------------------------------------

# The arena at 224 px plus its task strip and a band for the renderer's driver badge fits the app
# window's frame box at exactly 2x zoom (pixel-exact, no smoothing per frame).
ONESHOT_RENDER_SIZE = 224


@dataclass
class OneShotSettings:
    """What shapes a one-shot run. Nothing is saved or resumed: each kept demo is its own folder."""

    watch_episodes: int = 5  # episodes the policy plays from new starts after each demo
    seed: int = 0
    simulated: bool = False

    def __post_init__(self) -> None:
        if self.watch_episodes < 1:
            raise ConfigError(f"watch episodes must be at least 1, got {self.watch_episodes}")

    def plan(self) -> list[str]:
        """One stage: the one-shot mode (its manager is a one-stage :class:`app.modes.manager.ModeManager`)."""
        return ["oneshot"]


class OneShotSession:
    """The one-shot mode's glue to ilcore, as :class:`Session` is the DAgger plan's.

    It owns the particle env (every task of the family, rendered for the window), the
    demo-conditioned policy (a folder written by ``ilcore train oneshot``, or a trained one) and
    the folder kept demos go to (``out``; None keeps them in memory only). The mode and the
    simulated person never touch ilcore themselves: they reset and step through here, hand a
    finished demo to :meth:`keep_demo` and ask :meth:`conditioned` for the policy that performs it.
    """

    def __init__(self, policy: Any, out: str | Path | None = None, settings: OneShotSettings | None = None, *,
                 policy_name: str | None = None) -> None:
        from ilcore.algos.oneshot import DemoConditionedPolicy, load_policy  # torch: not in the DAgger app's window

        self.settings = settings or OneShotSettings()
        self.policy = policy if isinstance(policy, DemoConditionedPolicy) else load_policy(policy)
        # shown in the HUD's footer: the run folder's name unless the caller names a trained policy
        self.policy_name = policy_name if policy_name is not None else (
            "" if isinstance(policy, DemoConditionedPolicy) else Path(policy).name)
        self.state = SessionState()  # the position in the one-stage plan; never saved
        self.autopilot = self.settings.simulated
        self.action_names: Any = None  # set by the loop from the keymap
        self.out = Path(out) if out is not None else None
        self.env_kwargs = {k: v for k, v in self.policy.config.env_kwargs.items() if k not in ("task_id", "task_pool")}
        # every task of the family can be shown, whichever the policy trained on
        self.env = make_env(ONESHOT_ENV_ID, {"render_size": ONESHOT_RENDER_SIZE, **self.env_kwargs, "task_pool": "all"},
                            render_mode="rgb_array")
        base = self.env.unwrapped
        self.tasks: list[tuple[int, ...]] = [tuple(t) for t in base.tasks]
        held_out = task_split(base.n_landmarks, base.task_length)["held_out"]
        # Held-out tasks first: showing the policy a task it never trained on is the point.
        self.task_order = held_out + [t for t in range(len(self.tasks)) if t not in held_out]
        self.rng = np.random.default_rng(self.settings.seed)

    @property
    def action_space(self) -> gym.Space:
        return self.env.action_space

    def describe_task(self, task_id: int) -> str:
        return describe_task(self.tasks[task_id])

    def reset_env(self, task_id: int) -> np.ndarray:
        """A new layout of task ``task_id`` (seeded from the session's seed)."""
        obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)), options={"task_id": int(task_id)})
        return obs

    def step(self, action: Any) -> tuple[np.ndarray, bool, bool]:
        """(next observation, episode over, every landmark reached in order)."""
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, bool(terminated or truncated), bool(info.get("is_success", False))

    def noop_action(self) -> np.ndarray:
        return np.zeros(self.action_space.shape, np.float32)

    def render(self) -> np.ndarray:
        return np.asarray(self.env.render())

    def point(self) -> np.ndarray:
        """Where the point is in the arena (x, y in [-1, 1], y up)."""
        return np.asarray(self.env.unwrapped.point)

    def keep_demo(self, observations: list[np.ndarray], actions: list[np.ndarray], task_id: int) -> tuple[Any, Path | None]:
        """The finished episode as a one-shot demo of ``task_id``, and the folder it was written to
        (``oneshot-demo-NNN`` under ``out``, with the task in the episode's attrs; None without ``out``)."""
        from ilcore.algos.oneshot import TaskDemo, write_demos  # torch: not in the DAgger app's window

        demo = TaskDemo(np.stack(observations), np.stack(actions).astype(np.float32), int(task_id),
                        tuple(self.env.unwrapped.task))
        path = None
        if self.out is not None:
            path = self._next_demo_path(self.out)
            write_demos(path, [demo], env_kwargs=self.env_kwargs)
        return demo, path

    @staticmethod
    def _next_demo_path(out: Path) -> Path:
        """``oneshot-demo-NNN`` after the highest one already in ``out`` (an --out reused later adds to it)."""
        taken = [int(p.name.rsplit("-", 1)[1]) for p in out.glob("oneshot-demo-*") if p.name.rsplit("-", 1)[1].isdigit()]
        return out / f"oneshot-demo-{max(taken, default=0) + 1:03d}"

    def conditioned(self, demo: Any) -> Any:
        """The policy shown ``demo``: ``act(obs)`` performs its task."""
        return self.policy.condition(demo)

    def expert_for(self, task_id: int) -> Any:
        """The scripted particle expert for task ``task_id`` (the simulated person's demonstrator)."""
        return ParticleSequenceExpert(self.action_space, task=self.tasks[task_id], max_speed=self.env.unwrapped.max_speed)

    def close(self) -> None:
        self.env.close()


def make_app_env(env_id: str, env_kwargs: dict[str, Any], max_episode_steps: int | None) -> gym.Env:
    """The env the app shows: rgb_array frames, optionally capped; refused in one line if unusable."""
    env = make_env(env_id, env_kwargs, render_mode="rgb_array")
    if max_episode_steps:
        env = gym.wrappers.TimeLimit(env.unwrapped, max_episode_steps=max_episode_steps)
    try:
        _check_action_space(env_id, env.action_space)
    except ConfigError:
        env.close()
        raise
    return env


def _check_action_space(env_id: str, space: gym.Space) -> None:
    if isinstance(space, gym.spaces.Discrete):
        return
    if isinstance(space, gym.spaces.Box) and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
        return
    raise ConfigError(f"{env_id} has action space {space}; the app needs Discrete or bounded Box actions")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def downscale(frame: np.ndarray, width: int = REPLAY_WIDTH) -> np.ndarray:
    """(H, W, ...) uint8 -> at most ``width`` wide, each pixel the mean of a k x k block (k the
    smallest integer factor that fits): thin lines such as the pole stay smooth, where picking
    every k-th pixel made them jagged and flicker from frame to frame."""
    h, w = frame.shape[:2]
    k = -(-w // width)
    if k <= 1:
        return frame.copy()
    hh, ww = (h // k) * k, (w // k) * k
    # rows then columns added as strided slices: numpy's sum over the axes of a 5-d block view is
    # several times slower, and this is done for every frame of a replay
    wide = np.uint16 if k < 16 else np.uint32
    rows = frame[0:hh:k, :ww].astype(wide)
    for i in range(1, k):
        rows += frame[i:hh:k, :ww]
    total = rows[:, 0::k] + (k * k) // 2
    for j in range(1, k):
        total += rows[:, j::k]
    return (total // (k * k)).astype(np.uint8)


class FrameHistory:
    """The frames of the last ``length`` env steps of the running episode, for review replays.

    Until the first clip is taken, frames are kept whole (a copy: an env may reuse its render
    buffer) and averaged down only then: in rounds that ask live, most never are. From then on
    each frame is averaged down as it comes, a steady cost per step rather than a stall at each
    deferred question. Overlapping clips of nearby questions share their small frames."""

    def __init__(self, length: int = REPLAY_FRAMES) -> None:
        self.frames: deque[list[np.ndarray | None]] = deque(maxlen=length)  # [whole frame, small frame]
        self.eager = False

    def push(self, frame: np.ndarray | None) -> None:
        if frame is not None:
            self.frames.append([None, downscale(frame)] if self.eager else [np.array(frame, copy=True), None])

    def clip(self) -> list[np.ndarray]:
        self.eager = True  # clips come in runs (a deferred round): pay per step from now on
        for entry in self.frames:
            if entry[1] is None:
                entry[1], entry[0] = downscale(entry[0]), None
        return [entry[1] for entry in self.frames]

    def clear(self) -> None:
        self.frames.clear()


__all__ = ["FrameHistory", "OneShotSession", "OneShotSettings", "Session", "SessionSettings", "SessionState",
           "ask_labeler", "simulated_person"]
