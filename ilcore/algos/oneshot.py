"""One-shot imitation: a policy conditioned on one demonstration of the task to perform.

After training over a family of tasks, the policy watches a single demonstration of a task it may
never have seen and performs it from new initial states (Duan et al. 2017):
``z = encode(demo)`` and ``a = pi(s, z)``. Training samples two demonstrations of the same task,
conditions on one and does behaviour cloning on the other's (state, action) pairs, so the only
way to lower the loss is to read the task off the conditioning demonstration.

Encoders (``OneShotConfig.encoder``, a name in :data:`ENCODER_REGISTRY`):

- ``"final_state"``: z = MLP(last observation of the demo).
- ``"mean_pool"``: z = mean over steps of MLP(step), a step being (o_t, a_t, o_{t+1}).
- ``"attention"``: multi-head soft attention over the demo's step embeddings with a query
  computed from the current state (as in Duan et al.'s demonstration attention), so z depends
  on how far through the task the policy is.
- ``"none"``: task-blind behaviour cloning (the demo is ignored) - a lower bound.
- ``"oracle"``: no demo; z is the task itself (one one-hot per task position) - an upper bound.

Optionally a TecNet-style loss (James et al. 2018) shapes a demo-level embedding: embeddings are
L2-normalised and, within a batch of distinct tasks, each target demo must be more cosine-similar
to its own task's conditioning demo than to any other by a margin. Both objectives are loss terms
in :mod:`ilcore.algos.losses` (:class:`~ilcore.algos.losses.ActionMSE`,
:class:`~ilcore.algos.losses.TecNetMargin`).

A trained network is a :class:`DemoConditionedPolicy`; shown one demo it becomes a
:class:`ConditionedPolicy`, an ``Acts`` like every other policy, which is what
:func:`ilcore.eval.evaluate` and the app run. Checkpoints are the ``config.json`` +
``weights.pt`` folders of :mod:`ilcore.policies.checkpoint`, with their own format name.

Shapes: B tasks in a batch, S sampled states per task, T demo steps (padded), D obs dim,
A action dim, F = 2 D + A per-step feature dim, E embedding dim.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ilcore import spaces as ispaces
from ilcore.algos.losses import ActionMSE, DemoConditionedBatch, LossTerm, TecNetMargin, TotalLoss
from ilcore.data import SessionWriter, open_recording
from ilcore.devices import resolve_device
from ilcore.envs.particles import task_list
from ilcore.errors import ConfigError, FormatError, SpaceMismatchError
from ilcore.eval import EvalResult, evaluate, make_env
from ilcore.experts.particles import ParticleSequenceExpert
from ilcore.policies import checkpoint
from ilcore.policies.policy import CONFIG_FILE, WEIGHTS_FILE
from ilcore.progress import progress_bar
from ilcore.types import Actor, Acts, QueryReason

DEFAULT_ENV_ID = "ilcore/ParticleSequence-v0"
CHECKPOINT_FORMAT = "ilcore-oneshot-policy"
CHECKPOINT_VERSION = 1
# What save_policy wrote before one-shot policies used the shared checkpoint format: a plain
# JSON config and a state dict without the "encoder." prefix. load_policy still reads them.
LEGACY_CONFIG_FILE = "oneshot_config.json"
LEGACY_WEIGHTS_FILE = "oneshot_weights.pt"


@dataclass(frozen=True)
class TaskDemo:
    """One demonstration of one task.

    observations: (T+1, D) float32, the reset observation plus one per step
    actions:      (T, A) float32, what the demonstrator says should be done at each step
    task_id:      the task's id in its family
    task:         the task's content (landmark indices in order), used only by the oracle
    """

    observations: np.ndarray
    actions: np.ndarray
    task_id: int
    task: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.observations.ndim != 2 or self.actions.ndim != 2:
            raise ConfigError("TaskDemo.observations must be (T+1, D) and actions (T, A).")
        if len(self.observations) != len(self.actions) + 1:
            raise ConfigError(
                f"TaskDemo has {len(self.observations)} observations for {len(self.actions)} actions; expected T+1 and T."
            )
        if len(self.actions) == 0:
            raise ConfigError("TaskDemo needs at least one step.")

    @property
    def length(self) -> int:
        return len(self.actions)


@dataclass
class OneShotConfig:
    """Model and training settings (JSON-able; saved in the checkpoint's config.json)."""

    encoder: str = "attention"  # a name in ENCODER_REGISTRY
    embed_dim: int = 64  # E: size of the demo embedding z
    hidden: tuple[int, ...] = (256, 256)  # policy MLP hidden sizes
    encoder_hidden: int = 128  # width of the per-step / final-state embedding MLPs
    heads: int = 4  # attention heads (attention encoder only)
    steps: int = 6000  # gradient steps
    batch_tasks: int = 16  # B: tasks per batch (distinct when the family allows)
    states_per_task: int = 16  # S: BC states sampled from each target demo
    lr: float = 1e-3
    # Cosine decay of the learning rate down to lr * lr_floor; 1 keeps it constant, which generalised
    # better to held-out particle tasks (0.93 vs 0.83 over 5 seeds at 6000 steps, docs/benchmarks.md).
    lr_floor: float = 1.0
    weight_decay: float = 0.0
    tecnet_weight: float = 0.0  # weight of the cosine margin embedding loss (0: off)
    tecnet_margin: float = 0.1
    seed: int = 0
    # Filled in by training from the data; needed to rebuild the model.
    obs_dim: int = 0
    act_dim: int = 0
    task_slots: int = 0  # oracle: task length K
    task_vocab: int = 0  # oracle: number of distinct landmark indices N
    obs_mean: list[float] = field(default_factory=list)
    obs_std: list[float] = field(default_factory=list)
    env_id: str = DEFAULT_ENV_ID
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.encoder not in ENCODER_REGISTRY:
            raise ConfigError(f"encoder must be one of {', '.join(ENCODER_REGISTRY)}; got {self.encoder!r}.")
        self.hidden = tuple(int(h) for h in self.hidden)
        for name in ("steps", "batch_tasks", "states_per_task", "embed_dim", "encoder_hidden", "heads"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.encoder == "attention" and self.embed_dim % self.heads:
            raise ConfigError(f"embed_dim ({self.embed_dim}) must be a multiple of heads ({self.heads}).")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "OneShotConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"the one-shot config has unknown fields {sorted(unknown)}; was it written by a newer ilcore?")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# Demonstrations
# ---------------------------------------------------------------------------------------------


def collect_expert_demos(
    task_ids: Iterable[int],
    demos_per_task: int,
    *,
    seed: int = 0,
    env_id: str = DEFAULT_ENV_ID,
    env_kwargs: dict[str, Any] | None = None,
    noise: float = 0.0,
) -> list[TaskDemo]:
    """Demonstrations by the scripted particle expert, ``demos_per_task`` per task id.

    With ``noise > 0`` the executed action is perturbed (DART) while the recorded action stays
    the expert's clean one, so the demos cover states a slightly-wrong learner drifts into.
    Only successful episodes are kept (the clean expert always succeeds).
    """
    env = make_env(env_id, env_kwargs)
    base: Any = env.unwrapped  # the particle env: its task and max_speed configure the expert
    rng = np.random.default_rng(seed)
    demos: list[TaskDemo] = []
    for task_id in task_ids:
        kept, attempt = 0, 0
        while kept < demos_per_task:
            attempt += 1
            if attempt > 20 * demos_per_task:
                raise ConfigError(f"the expert keeps failing task {task_id}; is the noise ({noise}) too large?")
            obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"task_id": int(task_id)})
            expert = ParticleSequenceExpert(env.action_space, task=base.task, max_speed=base.max_speed)
            observations, actions = [obs], []
            done = False
            info: dict[str, Any] = {}
            while not done:
                clean = expert.act(obs)
                executed = clean
                if noise > 0:
                    executed = np.clip(clean + rng.normal(scale=noise, size=clean.shape), -1, 1).astype(np.float32)
                obs, _, terminated, truncated, info = env.step(executed)
                observations.append(obs)
                actions.append(clean)
                done = terminated or truncated
            if not info.get("is_success", False):
                continue
            demos.append(
                TaskDemo(np.asarray(observations, np.float32), np.asarray(actions, np.float32), int(task_id), tuple(base.task))
            )
            kept += 1
    env.close()
    return demos


def demos_from_recording(paths: Any, episode_ids: Sequence[str] | None = None) -> tuple[list[TaskDemo], dict[str, Any]]:
    """Every episode of a recording (or those in ``episode_ids``) as a TaskDemo, plus the
    recording's env kwargs.

    The task id is read from each episode's ``attrs["task_id"]`` (written by whoever recorded
    it); the action at each step is the latest label when every step has one (a demo labelled
    by its driver, possibly relabelled later), otherwise the executed action.
    """
    rec = open_recording(paths)
    env_kwargs = dict(rec.env_kwargs or {})
    n_landmarks = int(env_kwargs.get("n_landmarks", 4))
    task_length = int(env_kwargs.get("task_length", 3))
    tasks = task_list(n_landmarks, task_length) if rec.env_id == DEFAULT_ENV_ID else []
    demos: list[TaskDemo] = []
    if episode_ids is not None:
        missing = [i for i in episode_ids if i not in set(rec.episode_ids())]
        if missing:
            raise ConfigError(f"episode {missing[0]!r} is not in the recording.")
        episodes: Iterable[Any] = (rec.load_episode(i) for i in episode_ids)
    else:
        episodes = rec.episodes()
    for ep in episodes:
        if ep.actions is None or ep.length == 0:
            continue
        if "task_id" not in ep.meta.attrs:
            raise FormatError(f"episode {ep.id} has no task_id attribute, so it cannot serve as a one-shot demo.")
        task_id = int(ep.meta.attrs["task_id"])
        labels = ep.effective_labels()
        if len(labels) == ep.length:
            actions = np.stack([np.asarray(labels[t].action, np.float32) for t in range(ep.length)])
        else:
            actions = np.asarray(ep.actions, np.float32)
        if "task" in ep.meta.attrs:
            task = tuple(int(i) for i in ep.meta.attrs["task"])
        else:
            task = tuple(tasks[task_id]) if 0 <= task_id < len(tasks) else ()
        demos.append(TaskDemo(np.asarray(ep.observations, np.float32), actions.reshape(ep.length, -1), task_id, task))
    if not demos:
        raise FormatError("the recording holds no episodes with actions, so there is nothing to learn from.")
    return demos, env_kwargs


def write_demos(
    path: str | Path,
    demos: Sequence[TaskDemo],
    *,
    env_id: str = DEFAULT_ENV_ID,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Record ``demos`` as a session folder (scripted actor, every step labelled as a demo).

    The task id and content go into each episode's attrs so :func:`demos_from_recording` (and
    anyone reading the session) can tell which task an episode shows.
    """
    kwargs = dict(env_kwargs or {})
    probe = make_env(env_id, kwargs)
    with SessionWriter(
        path, env_id=env_id, observation_space=probe.observation_space,
        action_space=probe.action_space, env_kwargs=kwargs,
    ) as writer:
        for demo in demos:
            rec = writer.begin_episode(
                demo.observations[0], attrs={"task_id": int(demo.task_id), "task": [int(i) for i in demo.task]}
            )
            t_last = demo.length - 1
            for t in range(demo.length):
                rec.step(demo.actions[t], Actor.SCRIPTED, 0.0, t == t_last, False, demo.observations[t + 1])
                rec.label(t, demo.actions[t], source="scripted", reason=QueryReason.DEMO.value)
            rec.finish()
    probe.close()
    return Path(path)


def _step_features(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(T, F) per-step features (o_t, a_t, o_{t+1}) from (T+1, D) obs and (T, A) actions."""
    return np.concatenate([obs[:-1], actions, obs[1:]], axis=1)


@dataclass
class DemoTensors:
    """Demos padded to a common length, as torch tensors: what an encoder reads.

    feats (M, T, F), mask (M, T) bool, obs (M, T, D), actions (M, T, A), final (M, D),
    lengths (M,), task_onehot (M, K * N), task_ids (M,)
    """

    feats: torch.Tensor
    mask: torch.Tensor
    obs: torch.Tensor
    actions: torch.Tensor
    final: torch.Tensor
    lengths: torch.Tensor
    task_onehot: torch.Tensor
    task_ids: np.ndarray

    def to(self, device: torch.device) -> "DemoTensors":
        return DemoTensors(self.feats.to(device), self.mask.to(device), self.obs.to(device), self.actions.to(device),
                           self.final.to(device), self.lengths.to(device), self.task_onehot.to(device), self.task_ids)

    def select(self, index: np.ndarray) -> "DemoTensors":
        """The demos at ``index`` (host integers: the indices go to the device, nothing comes back)."""
        i = torch.as_tensor(index, device=self.feats.device)
        return DemoTensors(self.feats[i], self.mask[i], self.obs[i], self.actions[i], self.final[i], self.lengths[i],
                           self.task_onehot[i], self.task_ids[index])


def _task_onehot(task: Sequence[int], slots: int, vocab: int) -> np.ndarray:
    out = np.zeros((slots, vocab), np.float32)
    for k, lm in enumerate(task[:slots]):
        if 0 <= lm < vocab:
            out[k, lm] = 1.0
    return out.reshape(-1)


def pad_demos(demos: Sequence[TaskDemo], slots: int, vocab: int) -> DemoTensors:
    """``demos`` as :class:`DemoTensors`; ``slots`` x ``vocab`` sizes the oracle's task one-hot."""
    m = len(demos)
    t_max = max(d.length for d in demos)
    d_obs = demos[0].observations.shape[1]
    d_act = demos[0].actions.shape[1]
    feats = np.zeros((m, t_max, 2 * d_obs + d_act), np.float32)
    obs = np.zeros((m, t_max, d_obs), np.float32)
    acts = np.zeros((m, t_max, d_act), np.float32)
    mask = np.zeros((m, t_max), bool)
    for i, d in enumerate(demos):
        if d.observations.shape[1] != d_obs or d.actions.shape[1] != d_act:
            raise ConfigError("all demonstrations must share one observation and action size.")
        t = d.length
        feats[i, :t] = _step_features(d.observations, d.actions)
        obs[i, :t] = d.observations[:-1]
        acts[i, :t] = d.actions
        mask[i, :t] = True
    return DemoTensors(
        feats=torch.from_numpy(feats),
        mask=torch.from_numpy(mask),
        obs=torch.from_numpy(obs),
        actions=torch.from_numpy(acts),
        final=torch.from_numpy(np.stack([d.observations[-1] for d in demos]).astype(np.float32)),
        lengths=torch.tensor([d.length for d in demos]),
        task_onehot=torch.from_numpy(np.stack([_task_onehot(d.task, slots, vocab) for d in demos])),
        task_ids=np.array([d.task_id for d in demos]),
    )


# ---------------------------------------------------------------------------------------------
# Encoders: demo -> z. Each is one class in ENCODER_REGISTRY; a new encoder is a new class there.
# ---------------------------------------------------------------------------------------------


def _mlp(sizes: Sequence[int], *, final_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DemoEncoder(nn.Module):
    """What a demo tells the policy, in two steps so a conditioned policy encodes its demo once.

    ``summarise(demos)``: the state-independent part, per demo (B demos).
    ``embed(summary, obs)``: z ``(B, S, E)`` for S current states per demo, or None when the
    encoder gives the policy nothing (then ``z_dim`` is 0).
    ``demo_embedding(demos)``: one ``(B, E)`` vector per demo for the TecNet loss, or None.

    Inputs are already normalised by the policy (observations standardised with the training
    data's statistics; in a step feature (o_t, a_t, o_{t+1}) both observations the same way,
    actions as they are, in [-1, 1]).
    """

    name: ClassVar[str]

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__()
        self.z_dim = config.embed_dim

    def demo_embedding(self, demos: DemoTensors) -> torch.Tensor | None:
        raise NotImplementedError

    def summarise(self, demos: DemoTensors) -> Any:
        raise NotImplementedError

    def embed(self, summary: Any, obs: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError


class _PooledEncoder(DemoEncoder):
    """An encoder whose z is the same at every state: its demo embedding, expanded over S
    (L2-normalised when the TecNet loss shapes it, so the policy sees what the loss sees)."""

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__(config)
        self.unit_norm = config.tecnet_weight > 0

    def summarise(self, demos: DemoTensors) -> Any:  # (B, E) or None; the attention encoder's is a tuple
        z = self.demo_embedding(demos)
        if z is not None and self.unit_norm:
            z = nn.functional.normalize(z, dim=-1)
        return z

    def embed(self, summary: Any, obs: torch.Tensor) -> torch.Tensor | None:
        if summary is None:
            return None
        b, s = obs.shape[:2]
        return summary.unsqueeze(1).expand(b, s, summary.shape[-1])


class FinalStateEncoder(_PooledEncoder):
    """z = MLP(last observation of the demo): where the demo ended."""

    name = "final_state"

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__(config)
        d, h, e = config.obs_dim, config.encoder_hidden, config.embed_dim
        self.final_net = _mlp([d, h, h, e])

    def demo_embedding(self, demos: DemoTensors) -> torch.Tensor:
        return self.final_net(demos.final)


class MeanPoolEncoder(_PooledEncoder):
    """z = mean over the demo's steps of MLP(o_t, a_t, o_{t+1})."""

    name = "mean_pool"

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__(config)
        d, a, h, e = config.obs_dim, config.act_dim, config.encoder_hidden, config.embed_dim
        self.step_net = _mlp([2 * d + a, h, h, e])

    def demo_embedding(self, demos: DemoTensors) -> torch.Tensor:
        h = self.step_net(demos.feats)  # (B, T, E)
        m = demos.mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class AttentionEncoder(MeanPoolEncoder):
    """Multi-head soft attention over the demo's step embeddings, queried by the current state.

    Its demo embedding (for TecNet) is the mean-pooled step embedding; z itself depends on the
    state, so the summary is the keys and values and each state attends over them.
    """

    name = "attention"

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__(config)
        d, h, e = config.obs_dim, config.encoder_hidden, config.embed_dim
        self.heads = config.heads
        self.query_net = _mlp([d, h, e])
        self.key = nn.Linear(e, e)
        self.value = nn.Linear(e, e)
        self.attn_out = nn.Linear(e, e)

    def summarise(self, demos: DemoTensors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(keys (B, H, T, dh), values (B, H, T, dh), mask (B, T))."""
        h = self.step_net(demos.feats)  # (B, T, E)
        b, t, e = h.shape
        dh = e // self.heads
        k = self.key(h).view(b, t, self.heads, dh).transpose(1, 2)
        v = self.value(h).view(b, t, self.heads, dh).transpose(1, 2)
        return k, v, demos.mask

    def embed(self, summary: tuple[torch.Tensor, torch.Tensor, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        k, v, mask = summary
        b, s = obs.shape[:2]
        dh = k.shape[-1]
        e = dh * self.heads
        q = self.query_net(obs).view(b, s, self.heads, dh).transpose(1, 2)  # (B, H, S, dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)  # (B, H, S, T)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        ctx = torch.softmax(scores, dim=-1) @ v  # (B, H, S, dh)
        return self.attn_out(ctx.transpose(1, 2).reshape(b, s, e))


class TaskBlindEncoder(_PooledEncoder):
    """No z at all: task-blind behaviour cloning, the lower bound a demo must beat."""

    name = "none"

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__(config)
        self.z_dim = 0

    def demo_embedding(self, demos: DemoTensors) -> None:
        return None


class OracleEncoder(_PooledEncoder):
    """z = MLP(the task itself, one one-hot per position): the ceiling of knowing the task."""

    name = "oracle"

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__(config)
        self.task_net = _mlp([config.task_slots * config.task_vocab, config.encoder_hidden, config.embed_dim])

    def demo_embedding(self, demos: DemoTensors) -> torch.Tensor:
        return self.task_net(demos.task_onehot)


ENCODER_REGISTRY: dict[str, type[DemoEncoder]] = {
    cls.name: cls for cls in (FinalStateEncoder, MeanPoolEncoder, AttentionEncoder, TaskBlindEncoder, OracleEncoder)
}
ENCODERS = tuple(ENCODER_REGISTRY)  # the names, in the order `ilcore train oneshot --help` lists them


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------


class DemoConditionedPolicy(nn.Module):
    """pi(a | s, z) with z from a demo encoder; deterministic, tanh-squashed mean action.

    ``encode(demos, obs (B,S,D)) -> z (B,S,E)`` and ``forward(obs (B,S,D), z (B,S,E)) -> action (B,S,A)``.
    Shown one demo (:meth:`condition`) it is a :class:`ConditionedPolicy`, which acts like any policy.

    Not a :class:`ilcore.policies.Policy`: that class is an ensemble over an observation space
    whose actions come from a distribution head, and its ensemble disagreement, heads and
    nested-observation encoder have nothing to say about a second input (the demo). What the
    two share is the checkpoint folder (config.json + weights.pt, read through
    :mod:`ilcore.policies.checkpoint`) and, once conditioned, the ``Acts`` interface.
    """

    obs_mean: torch.Tensor  # observation normalisation (registered buffers, saved with the weights)
    obs_std: torch.Tensor

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__()
        self.config = config
        d, a = config.obs_dim, config.act_dim
        self.register_buffer("obs_mean", torch.tensor(config.obs_mean or [0.0] * d, dtype=torch.float32))
        self.register_buffer("obs_std", torch.tensor(config.obs_std or [1.0] * d, dtype=torch.float32))
        self.encoder = ENCODER_REGISTRY[config.encoder](config)
        self.policy_net = _mlp([d + self.encoder.z_dim, *config.hidden, a])

    @classmethod
    def create(cls, config: OneShotConfig, *, seed: int) -> "DemoConditionedPolicy":
        """A freshly initialised network whose weights depend only on ``seed``.

        The layers are built on the meta device and then initialised from a local
        ``torch.Generator``, so torch's global generator is neither reseeded nor advanced. The
        draws are nn.Linear's default initialisation in construction order, so a seed gives the
        weights it gave when training reseeded the global generator.
        """
        with torch.device("meta"):
            model = cls(config)
        model.to_empty(device="cpu")
        generator = torch.Generator().manual_seed(int(seed))
        for module in model.modules():
            if isinstance(module, nn.Linear):
                _init_linear(module, generator)
        with torch.no_grad():
            d = config.obs_dim
            model.obs_mean.copy_(torch.tensor(config.obs_mean or [0.0] * d, dtype=torch.float32))
            model.obs_std.copy_(torch.tensor(config.obs_std or [1.0] * d, dtype=torch.float32))
        return model

    def norm_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def normalised(self, demos: DemoTensors) -> DemoTensors:
        """``demos`` as the encoder reads them: observations in the step features and the final
        observation standardised, actions unchanged."""
        d = self.config.obs_dim
        feats = demos.feats
        feats = torch.cat([self.norm_obs(feats[..., :d]), feats[..., d:-d], self.norm_obs(feats[..., -d:])], dim=-1)
        return replace(demos, feats=feats, final=self.norm_obs(demos.final))

    def demo_embedding(self, demos: DemoTensors) -> torch.Tensor | None:
        """(B, E) demo-level embedding (state-independent), or None for the task-blind encoder."""
        return self.encoder.demo_embedding(self.normalised(demos))

    def encode(self, demos: DemoTensors, obs: torch.Tensor) -> torch.Tensor | None:
        """z (B, S, E) for S current states per demo; None for the task-blind encoder."""
        return self.encoder.embed(self.encoder.summarise(self.normalised(demos)), self.norm_obs(obs))

    def forward(self, obs: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        x = self.norm_obs(obs)
        if z is not None:
            x = torch.cat([x, z], dim=-1)
        return torch.tanh(self.policy_net(x))

    def save(self, directory: str | Path) -> Path:
        return save_policy(self, directory)

    def condition(self, demo: TaskDemo) -> "ConditionedPolicy":
        """This policy told to perform ``demo``'s task (see :class:`ConditionedPolicy`)."""
        return ConditionedPolicy(self, demo)


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """``nn.Linear.reset_parameters`` drawing from ``generator`` (the same two draws, in order)."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        if layer.bias is not None:
            fan_in = layer.weight.shape[1]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class ConditionedPolicy(Acts):
    """A demo-conditioned policy with its demonstration fixed: numpy in, numpy out.

    This is the per-task conditioning in the shape every evaluator and person-facing loop
    expects (``act`` / ``act_batch``, ``check_spaces``), so :func:`ilcore.eval.evaluate` runs
    it like any policy. The demo is encoded once, from the network's weights at the time of
    :meth:`DemoConditionedPolicy.condition` (condition again after training further); the
    attention encoder still attends per state, over the cached keys and values.
    """

    def __init__(self, model: DemoConditionedPolicy, demo: TaskDemo) -> None:
        cfg = model.config
        if demo.observations.shape[1] != cfg.obs_dim or demo.actions.shape[1] != cfg.act_dim:
            raise ConfigError(
                f"the demonstration has observation size {demo.observations.shape[1]} and action size "
                f"{demo.actions.shape[1]}, but the policy expects {cfg.obs_dim} and {cfg.act_dim}."
            )
        if cfg.encoder == "oracle" and not demo.task:
            raise ConfigError("the oracle policy needs the demo's task content, and this demo has none.")
        self.model = model
        self.demo = demo
        self._device = model.obs_mean.device
        with torch.no_grad():
            padded = pad_demos([demo], cfg.task_slots, cfg.task_vocab).to(self._device)
            self._summary = model.encoder.summarise(model.normalised(padded))

    @torch.no_grad()
    def act_batch(self, obs_batch: np.ndarray) -> np.ndarray:
        """(N, A) actions for (N, D) observations."""
        o = torch.as_tensor(np.asarray(obs_batch, np.float32), device=self._device).unsqueeze(0)  # (1, N, D)
        z = self.model.encoder.embed(self._summary, self.model.norm_obs(o))
        return self.model(o, z)[0].cpu().numpy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """(A,) action for one (D,) observation (the policy is deterministic either way)."""
        return self.act_batch(np.asarray(obs, np.float32)[None])[0]

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space, where: str = "the env") -> None:
        """SpaceMismatchError unless ``where`` gives flat observations and actions of the trained sizes."""
        cfg = self.model.config
        for what, space, size in (("observations", observation_space, cfg.obs_dim), ("actions", action_space, cfg.act_dim)):
            if not isinstance(space, gym.spaces.Box) or ispaces.leaf_shape(space) != (size,):
                raise SpaceMismatchError(f"The one-shot policy was trained on {what} of size {size}, but {where} "
                                         f"has {space}.")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class OneShotResult:
    """policy: the trained model; history: per-logged-step ``step``, ``bc_loss``, ``tecnet_loss``."""

    policy: DemoConditionedPolicy
    history: dict[str, list[float]]


def train_oneshot(
    demos: Sequence[TaskDemo],
    config: OneShotConfig | None = None,
    *,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    device: str | torch.device = "auto",
) -> OneShotResult:
    """Train a demo-conditioned policy over the tasks present in ``demos``.

    Each step samples ``batch_tasks`` tasks (distinct while there are enough), for each a
    conditioning demo and a different target demo of the same task, and regresses the target's
    actions at ``states_per_task`` random steps (:class:`~ilcore.algos.losses.ActionMSE` on the
    tanh-squashed mean, plus :class:`~ilcore.algos.losses.TecNetMargin` when ``tecnet_weight``
    is set). Every task needs at least two demos.

    ``callback(step, {"bc_loss", "tecnet_loss"})`` runs at every logged step (50 per run).
    ``device``: where to train (see :func:`ilcore.devices.resolve_device`); the padded demos
    move there once, the batch indices are drawn on the CPU as before (so a seed gives the same
    batches on any device), and the returned model is back on the CPU. The initial weights come
    from a local generator seeded with ``config.seed``; torch's global generator is not touched.
    """
    dev = resolve_device(device)
    config = OneShotConfig(**asdict(config)) if config is not None else OneShotConfig()
    if env_kwargs is not None:
        config.env_kwargs = dict(env_kwargs)
    by_task: dict[int, list[int]] = {}
    for i, d in enumerate(demos):
        by_task.setdefault(d.task_id, []).append(i)
    tasks = sorted(t for t, idx in by_task.items() if len(idx) >= 2)
    if not tasks:
        raise ConfigError("one-shot training needs at least two demonstrations of some task; none has two.")

    config.obs_dim = int(demos[0].observations.shape[1])
    config.act_dim = int(demos[0].actions.shape[1])
    config.task_slots = max(len(d.task) for d in demos)
    config.task_vocab = max((max(d.task) + 1 for d in demos if d.task), default=0)
    if config.encoder == "oracle" and config.task_slots == 0:
        raise ConfigError("the oracle encoder needs demos that carry their task content.")
    all_obs = np.concatenate([d.observations for d in demos])
    config.obs_mean = all_obs.mean(0).tolist()
    # Constant dimensions would divide by zero; a floor keeps them at their raw scale.
    config.obs_std = np.maximum(all_obs.std(0), 1e-2).tolist()

    rng = np.random.default_rng(config.seed)
    model = DemoConditionedPolicy.create(config, seed=config.seed).to(dev)
    data = pad_demos(demos, config.task_slots, config.task_vocab).to(dev)
    tecnet = config.tecnet_weight > 0 and model.encoder.z_dim > 0
    terms: list[LossTerm[DemoConditionedBatch]] = [ActionMSE(name="bc_loss")]
    if tecnet:
        terms.append(TecNetMargin(weight=config.tecnet_weight, margin=config.tecnet_margin))
    objective = TotalLoss(terms)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # lr_floor < 1 decays the step size late in training (cosine), which lowers the training loss
    # but, on held-out particle tasks, generalised worse than a constant rate.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: config.lr_floor + (1 - config.lr_floor) * 0.5 * (1 + math.cos(math.pi * i / config.steps))
    )
    history: dict[str, list[float]] = {"step": [], "bc_loss": [], "tecnet_loss": []}
    log_every = max(config.steps // 50, 1)
    running = np.zeros(2)
    n_b, n_s = config.batch_tasks, config.states_per_task
    iterator: Iterable[int] = progress_bar(range(config.steps), desc=f"oneshot[{config.encoder}]", unit="step",
                                           enabled=progress)
    lengths_all = data.lengths.cpu().numpy()
    model.train()
    for step in iterator:
        chosen = rng.choice(tasks, size=n_b, replace=n_b > len(tasks))
        cond_idx, tgt_idx = np.empty(n_b, int), np.empty(n_b, int)
        for j, t in enumerate(chosen):
            cond_idx[j], tgt_idx[j] = rng.choice(by_task[int(t)], size=2, replace=False)
        lengths = lengths_all[tgt_idx]
        steps_at = (rng.random((n_b, n_s)) * lengths[:, None]).astype(int)  # (B, S)
        rows = torch.as_tensor(tgt_idx, device=dev)[:, None]
        cols = torch.as_tensor(steps_at, device=dev)
        obs = data.obs[rows, cols]  # (B, S, D)
        cond = data.select(cond_idx)
        batch = DemoConditionedBatch(predicted=model(obs, model.encode(cond, obs)), target=data.actions[rows, cols])
        if tecnet:
            batch.support_embedding = model.demo_embedding(cond)
            batch.query_embedding = model.demo_embedding(data.select(tgt_idx))
            batch.task_ids = torch.as_tensor(chosen, device=dev)
        loss, parts = objective(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        running += (parts["bc_loss"].item(), parts["tecnet_loss"].item() if tecnet else 0.0)
        if (step + 1) % log_every == 0 or step + 1 == config.steps:
            k = (step % log_every) + 1
            history["step"].append(step + 1)
            history["bc_loss"].append(running[0] / k)
            history["tecnet_loss"].append(running[1] / k)
            if callback is not None:
                callback(step + 1, {"bc_loss": running[0] / k, "tecnet_loss": running[1] / k})
            running[:] = 0
    model.eval()
    return OneShotResult(model.cpu(), history)


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def evaluate_oneshot(
    policy: DemoConditionedPolicy,
    demo: TaskDemo,
    *,
    episodes: int = 20,
    seed: int = 0,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> EvalResult:
    """Success of ``policy`` shown ``demo`` on ``episodes`` new initial states of the demo's task.

    The env is told the task (it must know what success means); the policy only sees the demo.
    This is :func:`ilcore.eval.evaluate` of the conditioned policy with one env per episode
    (env i seeded ``seed + i``), so the episodes run in lockstep and the network sees one batch
    per step.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, got {episodes}.")
    cfg = policy.config
    kwargs = dict(cfg.env_kwargs if env_kwargs is None else env_kwargs)
    kwargs["task_id"] = demo.task_id
    kwargs.pop("task_pool", None)
    return evaluate(policy.condition(demo), env_id or cfg.env_id, episodes=episodes, seed=seed, env_kwargs=kwargs,
                    num_envs=episodes)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def save_policy(policy: DemoConditionedPolicy, directory: str | Path) -> Path:
    """Write ``config.json`` (format ``ilcore-oneshot-policy``) and ``weights.pt`` into ``directory``,
    with the guarantees of :func:`ilcore.policies.checkpoint.save_checkpoint` (NaN refused, both
    files or neither)."""
    doc = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **policy.config.to_json()}
    return checkpoint.save_checkpoint(Path(directory), CONFIG_FILE, doc, WEIGHTS_FILE, policy.state_dict())


def load_policy(directory: str | Path) -> DemoConditionedPolicy:
    """Read a policy written by :func:`save_policy` (or by its older one-shot-only format).

    As for every checkpoint (:mod:`ilcore.policies.checkpoint`): the config is checked and the
    network sized on the meta device before anything is allocated, and the weights are read
    without unpickling code, their names and shapes matching the network exactly.
    """
    folder = Path(directory)
    if (folder / CONFIG_FILE).exists():
        cfg_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        doc = checkpoint.read_config(cfg_path, kind="one-shot policy")
        checkpoint.check_format(doc, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, cfg_path)
        doc = {k: v for k, v in doc.items() if k not in ("format", "format_version")}
        stored_name: Callable[[str], str] = lambda name: name  # noqa: E731
    elif (folder / LEGACY_CONFIG_FILE).is_file() and (folder / LEGACY_WEIGHTS_FILE).is_file():
        cfg_path, weights_path = folder / LEGACY_CONFIG_FILE, folder / LEGACY_WEIGHTS_FILE
        doc = checkpoint.read_config(cfg_path, kind="one-shot policy")
        stored_name = _legacy_name
    else:
        raise ConfigError(f"{folder} is not a one-shot policy folder (it needs {CONFIG_FILE} and {WEIGHTS_FILE}).")
    config = _config_from_doc(doc, cfg_path)
    shapes = checkpoint.shapes_on_meta(lambda: DemoConditionedPolicy(config), f"The one-shot config {cfg_path}")
    stored = checkpoint.load_weights(weights_path, {stored_name(k): s for k, s in shapes.items()}, cfg_path)
    with torch.device("meta"):
        model = DemoConditionedPolicy(config)
    model.to_empty(device="cpu")
    model.load_state_dict({k: stored[stored_name(k)] for k in shapes})
    model.eval()
    return model


def _legacy_name(name: str) -> str:
    """The state-dict key an old-format checkpoint used: the encoder's layers sat on the policy itself."""
    return name.removeprefix("encoder.")


def _config_from_doc(doc: Mapping[str, Any], cfg_path: Path) -> OneShotConfig:
    try:
        config = OneShotConfig.from_json(doc)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cfg_path} is not a valid one-shot config ({exc}).") from None
    if not isinstance(config.obs_dim, int) or not isinstance(config.act_dim, int) or config.obs_dim < 1 \
            or config.act_dim < 1:
        raise ConfigError(f"{cfg_path} does not give the observation and action sizes the policy was trained on.")
    return config
