"""The pygame-free glue between the app and ilcore: env, recording, learner, gate, queue, trainer.

Everything the app does to data is an ilcore call made here, so tests and scripts can drive a
whole session without a window. The session's own progress (which stage of the plan, round,
policy version, review queue, per-round returns) lives in ``<session>/app_state.json``, written
atomically after every change that matters, so ``--resume`` continues where a killed app stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from app.trainer import TrainerClient, TrainJob
from ilcore.errors import ConfigError
from ilcore.types import Actor

STATE_FILE = "app_state.json"
REPLAY_FRAMES = 8  # frames kept before a deferred query, for the review replay
REPLAY_WIDTH = 240  # replay frames are downscaled to this width to keep the queue small


@dataclass
class SessionSettings:
    """Everything that shapes a session; saved with it so --resume rebuilds the same thing."""

    env_id: str = "CartPole-v1"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    demo_episodes: int = 3  # the plan's demonstration stage ends after this many (NEXT ends it early)
    rounds: int = 3  # DAgger rounds
    episodes_per_round: int = 2
    query_mode: str = "mixed"  # live: pause and ask; deferred: queue for review; mixed: live, deferred in the last round
    gate: str = "ensemble"  # all, beta, ensemble, novelty, ensemble+novelty, none (interventions only)
    target_rate: float = 0.1  # fraction of learner-driven states the ensemble gate asks about
    beta: float = 0.0  # beta-mixing: probability per step that the person drives instead of the learner
    ensemble: int = 5  # members in the learner ensemble (disagreement needs >= 2)
    epochs: int = 30
    hidden: tuple[int, ...] = (64, 64)
    review_limit: int = 40  # at most this many deferred states per round, highest disagreement first
    watch_episodes: int = 2
    max_episode_steps: int | None = None  # cap episode length (CartPole's 500 steps is long to watch)
    seed: int = 0
    simulated: bool = False  # the engine's simulated person plays the human's part
    watch_only: bool = False  # demos saved observation-only (no actions, no labels), then a summary: no DAgger

    def __post_init__(self) -> None:
        if self.query_mode not in ("live", "deferred", "mixed"):
            raise ConfigError(f"query mode must be live, deferred or mixed, not {self.query_mode!r}")
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"beta must be in [0, 1], got {self.beta}")
        if self.ensemble < 1:
            raise ConfigError(f"ensemble size must be >= 1, got {self.ensemble}")
        if self.demo_episodes < 0 or self.rounds < 0 or self.episodes_per_round < 1:
            raise ConfigError("demo episodes and rounds must be >= 0 and episodes per round >= 1")
        self.hidden = tuple(self.hidden)

    def plan(self) -> list[str]:
        """The stages NEXT walks through: demo, train, (dagger, train) x rounds, review, train, watch, summary.

        A watch-only session is only watch_only, summary: DAgger needs the action labels it does not keep."""
        if self.watch_only:
            return ["watch_only", "summary"]
        stages = ["demo", "train"]
        for k in range(1, self.rounds + 1):
            stages += [f"dagger:{k}", "train"]
        stages += ["review", "train", "watch", "summary"]
        return stages

    def query_mode_for(self, round: int) -> str:
        if self.query_mode == "mixed":
            return "deferred" if round == self.rounds else "live"
        return self.query_mode


@dataclass
class SessionState:
    """Progress saved in app_state.json."""

    settings: dict[str, Any] = field(default_factory=dict)
    stage: int = 0  # index into settings.plan()
    round: int = 0
    round_episodes: int = 0  # episodes finished in the current stage (demo or dagger round)
    policy_version: int = 0
    policy_path: str | None = None
    labels: int = 0  # labels given (demo steps, answered queries, interventions, review)
    human_seconds: float = 0.0
    asked: int = 0  # states the gate asked about
    learner_steps: int = 0  # learner-driven states the gate saw
    labels_at_last_train: int = -1  # skip a training stage when nothing new was labelled since
    episodes: list[dict[str, Any]] = field(default_factory=list)  # id, round, kind, return, length
    evals: list[dict[str, Any]] = field(default_factory=list)  # version, labels, eval_return, ci95, valid_loss


class Session:
    """One session folder: env + writer + learner + gate + review queue + background trainer."""

    def __init__(self, out: str | Path, settings: SessionSettings | None = None, *, resume: bool = False) -> None:
        from ilcore.data import SessionWriter

        self.path = Path(out)
        state_file = self.path / STATE_FILE
        if resume:
            if not state_file.exists():
                raise ConfigError(f"{self.path} is not an app session to resume (no {STATE_FILE})")
            self.state = SessionState(**json.loads(state_file.read_text()))
            saved = dict(self.state.settings)
            saved["hidden"] = tuple(saved.get("hidden", (64, 64)))
            self.settings = SessionSettings(**saved)
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
        try:
            env = gym.make(s.env_id, render_mode="rgb_array", **s.env_kwargs)
        except gym.error.Error as exc:
            raise ConfigError(f"cannot make env {s.env_id!r}: {exc}") from None
        if s.max_episode_steps:
            env = gym.wrappers.TimeLimit(env.unwrapped, max_episode_steps=s.max_episode_steps)
        self.env = env
        _check_action_space(s.env_id, env.action_space)
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
        self.label_source = "simulated" if s.simulated else "human"
        self.person_actor = Actor.SCRIPTED if s.simulated else Actor.HUMAN
        self.policy: Any = None
        if self.state.policy_path:
            self.load_policy(self.state.policy_path)
        from ilcore.algos.dagger import Constant, DaggerController, make_gate

        gate = make_gate(s.gate, target_rate=s.target_rate, seed=s.seed, ensemble=s.ensemble,
                         beta=Constant(s.target_rate) if s.gate == "beta" else None)
        queue: list[Any] = []
        learner_obs: list[Any] = []
        if resume and self.writer.episode_ids():
            from ilcore.algos.dagger.run import scan_session

            scanned = scan_session(self.path)  # the queue and the round's states, rebuilt from the recording
            queue = list(scanned.pending)
            learner_obs = list(scanned.learner_obs.get(self.state.round - 1, []))
            # The recording is the truth: an episode whose write the kill interrupted is not in it.
            on_disk = set(self.writer.episode_ids())
            self.state.episodes = [e for e in self.state.episodes if e["id"] in on_disk]
            self.state.round_episodes = int(scanned.episodes_per_round.get(self.state.round, 0))
        # The engine's step-wise DAgger controller: the app owns the clock and drives it.
        self.controller = DaggerController(
            s.env_id, self.writer, gate, policy=self.policy, beta_mix=Constant(s.beta), label_source=self.label_source,
            round=self.state.round, seed=s.seed, defer_unanswered=True, queue=queue, episodes_in_round=self.state.round_episodes,
        )
        if learner_obs and self.policy is not None:
            self.controller.calibrate_on(learner_obs)
        # replay clips for deferred states: (episode id, step) -> downscaled frames before it
        self.replays: dict[tuple[str, int], list[np.ndarray]] = {}
        self.trainer = TrainerClient()
        self._episode_seed = s.seed * 1000 + len(self.state.episodes)
        self.last_trained: dict[str, Any] | None = None
        self._observer: Any = None  # the EpisodeRecorder of the watch-only episode in progress
        self.save()

    # --- persistence -----------------------------------------------------------------------
    def save(self) -> None:
        """Write app_state.json atomically (temp file + os.replace), so a kill never leaves half of it."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=1, default=_json_default))
        os.replace(tmp, self.path / STATE_FILE)

    def close(self) -> None:
        self.save()
        self.trainer.close()
        try:
            self.writer.flush()
        finally:
            self.writer.close()
            self.env.close()

    # --- env -------------------------------------------------------------------------------
    def reset_env(self) -> Any:
        self._episode_seed += 1
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
        from ilcore.policies import Policy

        self.policy = Policy.load(path)
        self.policy.eval()
        if getattr(self, "controller", None) is not None:
            self.controller.policy = self.policy

    def propose(self, obs: Any) -> tuple[Any, float]:
        """The learner's action at ``obs`` and its ensemble disagreement (watch mode; not recorded)."""
        import torch

        with torch.no_grad():
            out = self.policy.predict_ensemble(_batch1(obs))
        return _index0(out.action), float(np.asarray(out.uncertainty).reshape(-1)[0])

    @property
    def gate(self) -> Any:
        return self.controller.gate

    @property
    def query_rate(self) -> float | None:
        return None if self.state.learner_steps == 0 else self.state.asked / self.state.learner_steps

    def end_round(self) -> None:
        """Close the controller's round (training happens in the background trainer, not here)."""
        if self.controller.in_episode:
            self.controller.end_episode(discard=True)
        self.controller.end_round(train=False)
        self.state.round = self.controller.round
        self.state.round_episodes = 0
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
                self.writer.discard_episode(ep["id"])
                ep["discarded"] = True
                self.state.labels -= int(ep.get("labels", 0))
                self.save()
                return ep["id"]
        return None

    # --- watch-only recording: observations without actions -------------------------------
    def begin_observation_episode(self, obs: Any) -> None:
        """Start an observation-only episode (watch-only demos): it will hold no actions and no labels.

        Closing the app before its first step leaves no file (the writer drops step-less episodes)."""
        self.discard_observation_episode()
        self._observer = self.writer.begin_episode(
            obs, seed=self._episode_seed, round=self.state.round,
            attrs={"watch_only": True, "demonstrator": self.label_source},
        )

    def observe_step(self, next_obs: Any, reward: float, terminated: bool, truncated: bool) -> int:
        """Record one step of the running watch-only episode as an observation only; returns its index.

        The reward is kept (it is what the env showed, and it gives the summary a return); the
        action that caused the step is not."""
        assert self._observer is not None, "begin_observation_episode first"
        return self._observer.observe(next_obs, reward=reward, terminated=terminated, truncated=truncated)

    def finish_observation_episode(self, *, kind: str, total_return: float, length: int) -> str:
        """Write the running watch-only episode (in the background) and note it in app_state.json."""
        assert self._observer is not None, "begin_observation_episode first"
        episode_id = self._observer.finish()
        self._observer = None
        self.state.episodes.append(
            {"id": episode_id, "round": self.state.round, "kind": kind, "return": float(total_return), "length": int(length), "labels": 0}
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
        import shlex

        data = shlex.quote(str(self.path))
        name = self.path.name or "session"
        return [
            ("clone a policy without actions (BCO)", f"ilcore train bco --data {data} --out {shlex.quote(f'runs/{name}-bco')}"),
            ("or learn a time-contrastive embedding (a reward for RL)", f"ilcore train tcn --data {data} --out {shlex.quote(f'runs/{name}-tcn')}"),
            ("look at the recording", f"ilcore info {data}"),
        ]

    def write_watch_only_summary(self) -> dict[str, Any]:
        """summary.json of a watch-only session, counted from the recording itself (the truth)."""
        from ilcore.data import open_recording

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
            "human_seconds": round(self.state.human_seconds, 2),
            "next": [cmd for _, cmd in self.next_commands()],
        }
        (self.path / "summary.json").write_text(json.dumps(summary, indent=1, default=_json_default))
        return summary

    def review_queue(self) -> list[Any]:
        """Deferred states (ilcore Query), highest disagreement first, at most ``review_limit`` per round."""
        per_round: dict[int, int] = {}
        out = []
        for q in self.controller.review_queue():
            per_round[q.round] = per_round.get(q.round, 0) + 1
            if per_round[q.round] <= self.settings.review_limit:
                out.append(q)
        return out

    def answer_review(self, query: Any, action: Any, *, latency_ms: float) -> Any:
        label = self.controller.answer(query, action, latency_ms=latency_ms)  # saved at once (fsync)
        self.state.labels += 1
        self.state.human_seconds += latency_ms / 1000.0
        self.save()
        return label

    def retract_label(self, episode: str, step: int) -> None:
        self.writer.flush()  # a label in a just-finished episode can only be retracted once it is written
        self.writer.retract_label(episode, step)
        self.state.labels -= 1
        self.save()

    # --- training --------------------------------------------------------------------------
    def start_training(self) -> int:
        """Submit a training job on everything recorded so far; returns the version it will publish."""
        self.writer.flush()
        version = self.state.policy_version + 1
        s = self.settings
        self.state.labels_at_last_train = self.state.labels
        self.trainer.submit(
            TrainJob(
                session_dir=str(self.path), version=version, env_id=s.env_id, env_kwargs=dict(s.env_kwargs),
                epochs=s.epochs, ensemble=s.ensemble, hidden=tuple(s.hidden), seed=s.seed + version,
                eval_episodes=3,
            )
        )
        return version

    def train_blocking(self, *, eval_episodes: int = 0) -> dict[str, Any]:
        """Train the next policy here and now with the trainer's own job code (scripts, tests, benchmarks)."""
        import queue

        from app.trainer import _run_job

        self.writer.flush()
        version = self.state.policy_version + 1
        s = self.settings
        job = TrainJob(session_dir=str(self.path), version=version, env_id=s.env_id, env_kwargs=dict(s.env_kwargs), epochs=s.epochs,
                       ensemble=s.ensemble, hidden=tuple(s.hidden), seed=s.seed + version, eval_episodes=eval_episodes)
        msg = _run_job(job, queue.Queue())
        self.load_policy(msg["path"])
        self.controller.set_policy(self.policy)
        self.state.policy_version = version
        self.state.policy_path = msg["path"]
        self.save()
        return msg

    def poll_training(self) -> list[dict[str, Any]]:
        """Fold finished jobs in: swap the new policy in and remember its evaluation."""
        messages = self.trainer.poll()
        for msg in messages:
            if msg["kind"] == "done":
                self.load_policy(msg["path"])
                self.controller.set_policy(self.policy)  # recalibrates the gate in the new policy's units
                self.state.policy_version = int(msg["version"])
                self.state.policy_path = msg["path"]
                self.state.evals.append(
                    {"version": msg["version"], "labels": msg.get("labels"), "eval_return": msg.get("eval_return"),
                     "ci95": msg.get("eval_ci95"), "valid_loss": msg.get("valid_loss"), "round": self.state.round}
                )
                self.last_trained = msg
                self.save()
        return messages

    # --- summary ---------------------------------------------------------------------------
    def returns_per_round(self) -> dict[int, float]:
        out: dict[int, list[float]] = {}
        for ep in self.state.episodes:
            if not ep.get("discarded"):
                out.setdefault(int(ep["round"]), []).append(float(ep["return"]))
        return {k: float(np.mean(v)) for k, v in sorted(out.items())}

    def write_summary(self) -> dict[str, Any]:
        """summary.json and summary.png (return vs labels) in the session folder."""
        summary = {
            "env_id": self.settings.env_id,
            "labels": self.state.labels,
            "human_seconds": round(self.state.human_seconds, 2),
            "query_rate": self.query_rate,
            "returns_per_round": self.returns_per_round(),
            "evals": self.state.evals,
            "episodes": len([e for e in self.state.episodes if not e.get("discarded")]),
        }
        (self.path / "summary.json").write_text(json.dumps(summary, indent=1, default=_json_default))
        points = [(e["labels"], e["eval_return"]) for e in self.state.evals if e.get("eval_return") is not None]
        if points:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="#3b82f6")
            ax.set_xlabel("labelled states used for training")
            ax.set_ylabel("evaluation return")
            ax.set_title(f"{self.settings.env_id}: return vs labels")
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(self.path / "summary.png")
            plt.close(fig)
        return summary


def _check_action_space(env_id: str, space: gym.Space) -> None:
    if isinstance(space, gym.spaces.Discrete):
        return
    if isinstance(space, gym.spaces.Box) and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
        return
    raise ConfigError(f"{env_id} has action space {space}; the app needs Discrete or bounded Box actions")


def _constant(value: float) -> Any:
    from ilcore.algos.dagger.schedules import Constant

    return Constant(value)


def _batch1(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: _batch1(v) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_batch1(v) for v in obs)
    return np.asarray(obs)[None]


def _index0(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _index0(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_index0(v) for v in x)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)[0]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def downscale(frame: np.ndarray, width: int = REPLAY_WIDTH) -> np.ndarray:
    """Nearest-neighbour downscale (H, W, C) -> (h, width, C) for replay clips; cheap, no deps."""
    h, w = frame.shape[:2]
    if w <= width:
        return frame.copy()
    step = w / width
    cols = (np.arange(width) * step).astype(int)
    rows = (np.arange(int(h / step)) * step).astype(int)
    return frame[rows][:, cols].copy()


class FrameHistory:
    """The last few frames of the running episode (downscaled), for review replays."""

    def __init__(self, length: int = REPLAY_FRAMES) -> None:
        self.frames: deque[np.ndarray] = deque(maxlen=length)

    def push(self, frame: np.ndarray | None) -> None:
        if frame is not None:
            self.frames.append(downscale(frame))

    def clip(self) -> list[np.ndarray]:
        return list(self.frames)

    def clear(self) -> None:
        self.frames.clear()


__all__ = ["Session", "SessionSettings", "SessionState", "FrameHistory"]
