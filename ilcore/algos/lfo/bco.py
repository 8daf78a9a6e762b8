"""Behavioural cloning from observation, BCO(alpha) (Torabi, Warnell and Stone, 2018).

1. Pre-demonstration: the agent acts in the env (uniformly random actions, random actions that
   persist ("sticky": each step repeats the last action with probability ``sticky_prob``), or a
   given policy) for ``pre_demo_steps`` steps and records (s, a, s').
2. An inverse dynamics model p(a | s, s') is fitted on that experience (:mod:`.idm`).
3. The IDM labels every (s_t, s_{t+1}) pair of the observation-only demonstrations.
4. A policy is cloned on the inferred labels (:func:`ilcore.algos.bc.train_bc`).
5. BCO(alpha > 0) repeats ``iterations`` times: roll the current policy out for
   ``alpha * pre_demo_steps`` more steps, refit the IDM on ALL agent experience, relabel, re-clone.
   BCO(0) stops after step 4.

Third-person demonstrations: an optional ``encoder`` (e.g. a multi-view TCN) maps demo states
and agent states into one shared space first; the IDM and the policy then work in that space,
and the result is an :class:`EncodedPolicy` that encodes the agent's own observations.

Shapes: N transitions; nested observation batches with leading N; actions (N, *action_shape).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import gymnasium as gym
import numpy as np
import torch

from ilcore import spaces as ispaces
from ilcore.algos.bc import BCConfig, train_bc
from ilcore.algos.lfo.idm import (
    IDMResult,
    InverseDynamicsModel,
    LabelAgreement,
    PairData,
    label_agreement,
    train_idm,
)
from ilcore.data import open_recording
from ilcore.errors import ConfigError, SpaceMismatchError
from ilcore.eval import make_env, make_vector_env
from ilcore.types import Nested


class ObservationEncoder(Protocol):
    """Maps raw observations to a shared feature space: ``encode(obs (N, ...)) -> (N, D) float32``
    (the identity, used when demos and env share a view, keeps the env's own space and leaves)."""

    @property
    def observation_space(self) -> gym.Space: ...  # the feature space, a (D,) Box for a real encoder

    def encode(self, obs_batch: Nested) -> Nested: ...


@dataclass
class ObservationDemos:
    """Observation-only demonstrations as N consecutive pairs.

    obs / next_obs: nested batches, leaves (N, ...): s_t and s_{t+1} of each demo step
    episode:        (N,) int64 demo episode of each pair
    true_actions:   (N, *action_shape) the demonstrator's actions when known (only used to
                    report the IDM's label accuracy), else None
    observation_space: the space of ``obs``
    """

    obs: Nested
    next_obs: Nested
    episode: np.ndarray
    observation_space: gym.Space
    true_actions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.episode)

    @classmethod
    def from_sequences(cls, observation_space: gym.Space, sequences: Sequence[Nested],
                       actions: Sequence[np.ndarray | None] | None = None) -> "ObservationDemos":
        """From per-episode observation sequences (leaves (T_i + 1, ...)) and, optionally, the
        T_i actions of each (all episodes must have them for ``true_actions`` to be set)."""
        obs_parts, next_parts, ep_parts, act_parts = [], [], [], []
        for i, seq in enumerate(sequences):
            t = ispaces.batch_len(seq) - 1
            if t < 1:
                continue
            obs_parts.append(ispaces.map_leaves(lambda a: np.asarray(a)[:-1], seq))
            next_parts.append(ispaces.map_leaves(lambda a: np.asarray(a)[1:], seq))
            ep_parts.append(np.full(t, i, dtype=np.int64))
            act_parts.append(None if actions is None else actions[i])
        if not obs_parts:
            raise ConfigError("The demonstrations hold no step with a next observation.")
        known = all(a is not None for a in act_parts)
        return cls(
            obs=ispaces.concatenate(observation_space, obs_parts),
            next_obs=ispaces.concatenate(observation_space, next_parts),
            episode=np.concatenate(ep_parts),
            observation_space=observation_space,
            true_actions=np.concatenate([np.asarray(a) for a in act_parts]) if known else None,
        )


def demos_from_recording(paths: Any) -> tuple[ObservationDemos, str, dict[str, Any]]:
    """(demos, env id, env kwargs) from recordings; executed actions, where recorded, become
    ``true_actions`` (all episodes must carry them, else none is used)."""
    rec = open_recording(paths)
    sequences, actions = [], []
    for ep in rec.episodes():
        sequences.append(ep.observations)
        actions.append(None if ep.actions is None else np.asarray(ep.actions))
    if not sequences:
        raise ConfigError(f"The recording at {paths} holds no episodes.")
    demos = ObservationDemos.from_sequences(rec.observation_space, sequences, actions)
    return demos, rec.env_id, dict(rec.env_kwargs or {})


@dataclass
class AgentExperience:
    """The agent's own (s, a, s') transitions, appended as it acts.

    obs / next_obs: lists of single observations; actions: list of actions; episode: list of
    ints; episode_returns: return of each episode completed while collecting.
    """

    obs: list[Any] = field(default_factory=list)
    actions: list[Any] = field(default_factory=list)
    next_obs: list[Any] = field(default_factory=list)
    episode: list[int] = field(default_factory=list)
    episode_returns: list[float] = field(default_factory=list)
    episodes_started: int = 0

    def __len__(self) -> int:
        return len(self.actions)

    def arrays(self, observation_space: gym.Space, action_space: gym.Space) -> tuple[Nested, np.ndarray, Nested, np.ndarray]:
        """(obs, actions, next_obs, episode) as batches with leading N."""
        return (ispaces.stack(observation_space, self.obs), ispaces.stack(action_space, self.actions),
                ispaces.stack(observation_space, self.next_obs), np.asarray(self.episode, dtype=np.int64))


BatchAct = Callable[[Nested, np.ndarray], Sequence[Any]]  # (obs of some envs, their indices) -> their actions


def per_env(acts: Sequence[Callable[[Any], Any]]) -> BatchAct:
    """A :data:`BatchAct` from one-observation callables: env ``i`` acts by ``acts[i]`` (or by the
    only one given), called in env order."""
    def act(obs: Nested, envs: np.ndarray) -> list[Any]:
        return [acts[int(i) if len(acts) > 1 else 0](ispaces.index(obs, j)) for j, i in enumerate(envs)]

    return act


def collect_experience(
    env: gym.Env,
    steps: int,
    act: Callable[[Any], Any],
    experience: AgentExperience,
    *,
    seed: int,
) -> list[float]:
    """Act for exactly ``steps`` env steps (starting a fresh episode) and append every transition.

    ``act(obs) -> action`` for one observation. Returns the returns of the episodes that
    finished during the call (the last, unfinished one is not counted). The one env is driven
    as a one-env vector (not closed here), so this is :func:`collect_vector_experience`.
    """
    venv = gym.vector.SyncVectorEnv([lambda: env], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    return collect_vector_experience(venv, steps, per_env([act]), experience, seed=seed)


def collect_vector_experience(
    venv: gym.vector.VectorEnv,
    steps: int,
    act: BatchAct,
    experience: AgentExperience,
    *,
    seed: int,
) -> list[float]:
    """Act in the N envs of ``venv`` (NEXT_STEP autoreset, e.g. ``ilcore.eval.make_vector_env``,
    sync or async) until exactly ``steps`` transitions are appended, after ``venv.reset(seed=seed)``.

    Each vector step appends the transitions of the envs that stepped (an env that finished an
    episode spends the next vector step resetting; it is not asked to act and records nothing),
    in env order, and the last step only as many as are still missing. ``act(obs, envs)`` gets
    the observations of the envs that act (leading len(envs)) and their indices. Every episode
    gets its own id in ``experience.episode``. Returns the returns of the episodes that finished
    within the recorded transitions. The same seed and ``act`` record the same transitions
    whether the envs run in this process or in worker processes.
    """
    n = venv.num_envs
    space = venv.single_action_space
    filler = copy.deepcopy(space)  # what an env that does not act is sent (ignored while it resets)
    filler.seed(0)
    actions_sent = [filler.sample() for _ in range(n)]
    returns: list[float] = []
    obs, _ = venv.reset(seed=seed)
    episode = np.arange(experience.episodes_started, experience.episodes_started + n)
    experience.episodes_started += n
    totals = np.zeros(n)
    resetting = np.zeros(n, dtype=bool)
    recorded = 0
    while recorded < steps:
        acting = np.flatnonzero(~resetting)[:steps - recorded]
        chosen = list(act(ispaces.index(obs, acting), acting)) if len(acting) else []
        for i, a in zip(acting, chosen):
            actions_sent[i] = a
        next_obs, reward, terminated, truncated, _ = venv.step(ispaces.stack(space, actions_sent))
        done = np.logical_or(terminated, truncated)
        for i, a in zip(acting.tolist(), chosen):
            experience.obs.append(ispaces.index(obs, i))
            experience.actions.append(a)
            experience.next_obs.append(ispaces.index(next_obs, i))
            experience.episode.append(int(episode[i]))
            totals[i] += float(reward[i])
            if done[i]:
                returns.append(float(totals[i]))
                totals[i] = 0.0
                episode[i] = experience.episodes_started
                experience.episodes_started += 1
        recorded += len(acting)
        # An env that did not act (reset step, or past the last needed transition) is not tracked further.
        resetting = done
        obs = next_obs
    experience.episode_returns.extend(returns)
    return returns


def sticky_random_actions(action_space: gym.Space, repeat_prob: float, seed: int) -> Callable[[Any], Any]:
    """An ``act(obs)`` that ignores obs: the first call draws ``action_space.sample()``; each later
    call repeats the previous action with probability ``repeat_prob``, else draws a new one."""
    rng = np.random.default_rng(seed)
    last: list[Any] = []

    def act(_obs: Any) -> Any:
        if not last or rng.random() >= repeat_prob:
            last[:] = [action_space.sample()]
        return last[0]

    return act


def _default_idm_config() -> Any:
    return BCConfig(epochs=30, batch_size=128, hidden=(64, 64), patience=5, valid_fraction=0.1)


def _default_bc_config() -> Any:
    return BCConfig(epochs=50, batch_size=64, hidden=(64, 64), patience=10, valid_fraction=0.1)


@dataclass
class BCOConfig:
    """Options of :func:`run_bco`.

    alpha: post-demonstration interactions per iteration as a fraction of ``pre_demo_steps``
        (0: plain BCO, no further env interaction after the pre-demonstration phase).
    pre_demo_steps: env steps of exploration before the demonstrations are labelled.
    iterations: post-demonstration iterations (used only when alpha > 0).
    idm: :class:`ilcore.algos.bc.BCConfig` for the inverse dynamics model (None: small MLP, 30 epochs).
    bc: BCConfig for the cloned policy (None: small MLP, 50 epochs, early stopping).
    exploration: "random" (uniform actions), "sticky" (uniform random actions that persist: each
        step repeats the previous action with probability ``sticky_prob``, else draws a new one;
        runs of one action reach states that jittering uniform actions do not), or "policy"
        (``exploration_policy`` must be given).
    sticky_prob: repeat probability of "sticky" exploration (mean run length 1 / (1 - p)).
    rollout_epsilon: share of post-demo rollout steps that take a uniformly random action instead
        of the policy's: the rollouts reach the demo's states (policy) and try every action there
        (random), which the IDM needs where the pre-demo phase never went (0: pure policy
        rollouts, as in the paper).
    stochastic_rollouts: post-demo rollouts sample from the policy (True, as in the paper)
        rather than taking its most likely action; sampling keeps the IDM's data diverse.
    labels: how the IDM labels demo pairs for cloning, Discrete actions only (Box actions always
        take the IDM's prediction): "soft" clones each pair once per action with weight
        ``p(a | s, s')`` (the cross-entropy to the IDM's posterior), "argmax" with its most likely
        action only (the paper). Where two actions lead to the same next state (a lander resting
        on its legs, idle or firing weakly) argmax labels follow whichever side the IDM tips to,
        and the clone inherits that arbitrary choice; soft labels keep the ambiguity visible.
    seed: seeds exploration, env resets, and both trainers.
    num_envs: envs that explore and roll out side by side (one vector step asks the policy once
        for all of them); 1 steps a single env exactly as before.
    async_envs: step each env in its own worker process (gymnasium AsyncVectorEnv); it records
        the same transitions as the in-process vector for the same seed.
    """

    alpha: float = 0.0
    pre_demo_steps: int = 5000
    iterations: int = 5
    idm: Any = None
    bc: Any = None
    exploration: str = "random"
    sticky_prob: float = 0.9
    rollout_epsilon: float = 0.0
    stochastic_rollouts: bool = True
    labels: str = "soft"
    seed: int = 0
    num_envs: int = 1
    async_envs: bool = False

    def check(self) -> None:
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise ConfigError(f"alpha must be a finite number >= 0, got {self.alpha}.")
        if self.pre_demo_steps < 1:
            raise ConfigError(f"pre_demo_steps must be >= 1, got {self.pre_demo_steps}.")
        if self.iterations < 0:
            raise ConfigError(f"iterations must be >= 0, got {self.iterations}.")
        if self.exploration not in ("random", "sticky", "policy"):
            raise ConfigError(f"exploration must be 'random', 'sticky' or 'policy', not {self.exploration!r}.")
        if not 0.0 <= self.rollout_epsilon <= 1.0:
            raise ConfigError(f"rollout_epsilon must be in [0, 1], got {self.rollout_epsilon}.")
        if not 0.0 <= self.sticky_prob < 1.0:
            raise ConfigError(f"sticky_prob must be in [0, 1), got {self.sticky_prob}.")
        if self.labels not in ("soft", "argmax"):
            raise ConfigError(f"labels must be 'soft' or 'argmax', not {self.labels!r}.")
        if self.num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {self.num_envs}.")

    @property
    def post_demo_steps(self) -> int:
        """Env steps of each post-demonstration iteration: alpha x pre_demo_steps (at least 1 if alpha > 0)."""
        return max(1, int(round(self.alpha * self.pre_demo_steps))) if self.alpha > 0 else 0


@dataclass(frozen=True)
class BCOIteration:
    """One labelling + cloning pass (iteration 0 follows the pre-demonstration phase).

    env_steps: total env interactions used so far (pre-demo + post-demo).
    idm_demo: agreement of the inferred demo labels with the demonstrator's true actions
        (None when the demos have no actions).
    idm_heldout: agreement with the executed actions on held-out agent episodes.
    label_histogram: for discrete actions, the share of each inferred demo label (a collapsed
        IDM shows up here even without true actions); None for Box.
    rollout_return: mean return of agent episodes completed in this iteration's env steps
        (NaN if none finished).
    eval_return: what ``evaluate_fn`` returned for the cloned policy (None without one).
    bc_valid_loss: the cloned policy's best validation NLL on inferred labels (NaN without split).
    """

    iteration: int
    env_steps: int
    idm_demo: LabelAgreement | None
    idm_heldout: LabelAgreement | None
    label_histogram: list[float] | None
    rollout_return: float
    eval_return: float | None
    bc_valid_loss: float

    def to_json(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "idm_demo": None if self.idm_demo is None else self.idm_demo.to_json(),
            "idm_heldout": None if self.idm_heldout is None else self.idm_heldout.to_json(),
            "label_histogram": self.label_histogram,
            "rollout_return": None if math.isnan(self.rollout_return) else self.rollout_return,
            "eval_return": self.eval_return,
            "bc_valid_loss": None if math.isnan(self.bc_valid_loss) else self.bc_valid_loss,
        }


@dataclass
class BCOResult:
    """The final cloned policy (an :class:`EncodedPolicy` when an encoder was used), the last
    IDM, the per-iteration history, the env steps used and the last inferred demo labels (N, ...)."""

    policy: Any
    idm: InverseDynamicsModel
    iterations: list[BCOIteration]
    env_steps: int
    inferred_actions: np.ndarray


class EncodedPolicy:
    """A policy trained on encoded observations, acting on raw ones: ``pi(a | encode(o))``.

    ``observation_space`` / ``action_space`` are the raw env's, so :func:`ilcore.eval.evaluate`
    accepts it as it would a plain policy.
    """

    def __init__(self, encoder: ObservationEncoder, policy: Any, observation_space: gym.Space) -> None:
        self.encoder = encoder
        self.policy = policy
        self.observation_space = observation_space
        self.action_space = policy.action_space

    def act_batch(self, obs_batch: Nested, deterministic: bool = True, *,
                  generator: torch.Generator | None = None) -> np.ndarray:
        return self.policy.act_batch(self.encoder.encode(obs_batch), deterministic, generator=generator)

    def act(self, obs: Nested, deterministic: bool = True) -> Any:
        batch = ispaces.map_leaves(lambda x: np.asarray(x)[None], obs)
        a = self.act_batch(batch, deterministic)[0]
        return int(a) if isinstance(self.action_space, gym.spaces.Discrete) else a


class _IdentityEncoder:
    def __init__(self, space: gym.Space) -> None:
        self.observation_space = space

    def encode(self, obs_batch: Nested) -> Nested:
        return obs_batch


def _encode_all(encoder: ObservationEncoder, obs: Nested, chunk: int = 4096) -> Nested:
    n = ispaces.batch_len(obs)
    if n <= chunk:
        return encoder.encode(obs)
    parts = [encoder.encode(ispaces.map_leaves(lambda a: np.asarray(a[lo:lo + chunk]), obs)) for lo in range(0, n, chunk)]
    return np.concatenate(parts)


def _label_histogram(action_space: gym.Space, labels: np.ndarray) -> list[float] | None:
    if not isinstance(action_space, gym.spaces.Discrete) or len(labels) == 0:
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64) - int(action_space.start), minlength=int(action_space.n))
    return (counts / counts.sum()).tolist()


def run_bco(
    demos: ObservationDemos,
    env_id: str,
    config: BCOConfig | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    env: gym.Env | None = None,
    encoder: ObservationEncoder | None = None,
    exploration_policy: Any = None,
    evaluate_fn: Callable[[Any], float] | None = None,
    callback: Callable[[BCOIteration], None] | None = None,
    progress: bool = False,
) -> BCOResult:
    """Run BCO(alpha) on observation-only demonstrations; see the module docstring.

    Args:
        demos: the demonstration pairs (in the agent's observation space, or in any space
            ``encoder`` accepts).
        env_id / env_kwargs: the env the agent explores; ``env`` overrides it (e.g. a wrapped env).
        encoder: maps demo and agent observations into one space (third-person imitation).
        exploration_policy: acts in the pre-demo phase when ``config.exploration == "policy"``
            (anything with ``act(obs)``).
        evaluate_fn: called with each cloned policy; its float result is stored per iteration.
        callback: called with each :class:`BCOIteration` as it completes.

    Raises:
        SpaceMismatchError: the demos do not fit the env (and no encoder bridges them).
    """
    cfg = config or BCOConfig()
    cfg.check()
    idm_cfg = cfg.idm or _default_idm_config()
    bc_cfg = cfg.bc or _default_bc_config()
    vector = cfg.num_envs > 1 or cfg.async_envs
    if env is not None and vector:
        raise ConfigError("num_envs > 1 and async_envs build their envs from env_id; pass no env.")
    own_env = env is None
    if vector:
        venv = make_vector_env(env_id, env_kwargs, cfg.num_envs, asynchronous=cfg.async_envs)
    else:
        if env is None:
            env = make_env(env_id, env_kwargs)
        one = env
        venv = gym.vector.SyncVectorEnv([lambda: one], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    try:
        obs_space, act_space = venv.single_observation_space, venv.single_action_space
        if encoder is None:
            if ispaces.space_key(demos.observation_space) != ispaces.space_key(obs_space):
                raise SpaceMismatchError(
                    f"The demonstrations' observations {demos.observation_space} do not match {env_id}'s "
                    f"{obs_space}; pass an encoder to imitate from another view.")
            enc: ObservationEncoder = _IdentityEncoder(obs_space)
        else:
            enc = encoder
        feature_space = enc.observation_space
        if cfg.exploration == "policy" and exploration_policy is None:
            raise ConfigError("exploration='policy' needs an exploration_policy.")

        demo_obs = _encode_all(enc, demos.obs)
        demo_next = _encode_all(enc, demos.next_obs)
        act_space.seed(cfg.seed)
        if cfg.exploration == "policy":
            explore = per_env([exploration_policy.act])
        elif cfg.exploration == "sticky":  # each env keeps its own run of repeated actions
            explore = per_env([sticky_random_actions(act_space, cfg.sticky_prob, cfg.seed + i)
                               for i in range(venv.num_envs)])
        else:
            explore = per_env([lambda _o: act_space.sample()])
        experience = AgentExperience()
        returns = collect_vector_experience(venv, cfg.pre_demo_steps, explore, experience, seed=cfg.seed)
        env_steps = cfg.pre_demo_steps
        gen = torch.Generator().manual_seed(cfg.seed)
        history: list[BCOIteration] = []
        policy: Any = None
        idm_result: IDMResult | None = None
        inferred = np.zeros(0)
        rounds = 1 + (cfg.iterations if cfg.alpha > 0 else 0)
        for it in range(rounds):
            if it > 0:
                current = policy
                noise_rng = np.random.default_rng(cfg.seed + 104729 * it)

                def act(o: Nested, envs: np.ndarray) -> list[Any]:
                    out: list[Any] = [None] * len(envs)
                    asked = []  # envs that take the policy's action: one batched call for all of them
                    for j in range(len(envs)):
                        if cfg.rollout_epsilon > 0 and noise_rng.random() < cfg.rollout_epsilon:
                            out[j] = act_space.sample()
                        else:
                            asked.append(j)
                    if asked:
                        chosen = current.act_batch(ispaces.index(o, np.asarray(asked)), not cfg.stochastic_rollouts,
                                                   generator=gen)
                        for j, a in zip(asked, chosen):
                            out[j] = int(a) if isinstance(act_space, gym.spaces.Discrete) else a
                    return out

                returns = collect_vector_experience(venv, cfg.post_demo_steps, act, experience,
                                                    seed=cfg.seed + 7919 * it)
                env_steps += cfg.post_demo_steps
            obs, actions, next_obs, episode = experience.arrays(obs_space, act_space)
            idm_result = train_idm(
                _encode_all(enc, obs), actions, _encode_all(enc, next_obs),
                observation_space=feature_space, action_space=act_space, episode=episode,
                config=_with_seed(idm_cfg, cfg.seed + it), progress=progress)
            inferred = idm_result.idm.predict(demo_obs, demo_next)
            demo_agreement = (label_agreement(act_space, inferred, demos.true_actions)
                              if demos.true_actions is not None else None)
            if cfg.labels == "soft" and isinstance(act_space, gym.spaces.Discrete):
                data = _soft_label_data(idm_result.idm.probabilities(demo_obs, demo_next), demo_obs,
                                        demos.episode, feature_space, act_space)
            else:
                data = PairData(obs=demo_obs, actions=inferred, weights=np.ones(len(demos), np.float32),
                                episode=demos.episode, observation_space=feature_space, action_space=act_space)
            bc_result = train_bc(data, _with_seed(bc_cfg, cfg.seed + it), progress=progress)
            inner = bc_result.policy
            policy = inner if encoder is None else EncodedPolicy(enc, inner, obs_space)
            valid = [v for v in bc_result.history.get("valid_loss", []) if not math.isnan(v)]
            record = BCOIteration(
                iteration=it,
                env_steps=env_steps,
                idm_demo=demo_agreement,
                idm_heldout=idm_result.valid_agreement,
                label_histogram=_label_histogram(act_space, inferred),
                rollout_return=float(np.mean(returns)) if returns else float("nan"),
                eval_return=None if evaluate_fn is None else float(evaluate_fn(policy)),
                bc_valid_loss=min(valid) if valid else float("nan"),
            )
            history.append(record)
            if callback is not None:
                callback(record)
        assert idm_result is not None
        return BCOResult(policy=policy, idm=idm_result.idm, iterations=history, env_steps=env_steps,
                         inferred_actions=inferred)
    finally:
        if own_env:  # a caller's env stays open (closing the one-env vector would close it)
            venv.close()


def _soft_label_data(probs: np.ndarray, obs: Nested, episode: np.ndarray, observation_space: gym.Space,
                     action_space: gym.Space, min_weight: float = 1e-3) -> PairData:
    """Each demo pair once per action the IDM finds plausible, weighted by ``p(a | s, s')``.

    probs: ``(N, n)``. Minimising the weighted -log pi over these rows is the cross-entropy to the
    IDM's posterior; rows below ``min_weight`` are dropped (they carry no signal, only cost).
    """
    rows, acts = np.nonzero(probs >= min_weight)
    return PairData(obs=ispaces.map_leaves(lambda a: np.asarray(a)[rows], obs), actions=acts.astype(np.int64),
                    weights=probs[rows, acts].astype(np.float32), episode=np.asarray(episode)[rows],
                    observation_space=observation_space, action_space=action_space)


def _with_seed(config: Any, seed: int) -> Any:
    return replace(config, seed=seed)


def save_bco_run(result: BCOResult, out: str | Path, *, meta: Mapping[str, Any] | None = None) -> Path:
    """Write the policy (``out/``), the IDM (``out/idm/``) and ``out/bco.json`` (the history).

    Only plain policies are saved as checkpoints; an :class:`EncodedPolicy` needs its encoder
    saved by the caller.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(result.policy, EncodedPolicy):
        raise ConfigError("An encoded policy cannot be saved as a plain checkpoint; save its encoder and inner policy.")
    result.policy.meta.update(dict(meta or {}))
    result.policy.save(out)
    result.idm.save(out / "idm")
    (out / "bco.json").write_text(json.dumps(
        {"env_steps": result.env_steps, "iterations": [r.to_json() for r in result.iterations], **dict(meta or {})},
        indent=1, default=float))
    return out
