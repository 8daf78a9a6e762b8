"""One-shot imitation: a policy conditioned on one demonstration of the task to perform.

After training over a family of tasks, the policy watches a single demonstration of a task it may
never have seen and performs it from new initial states (Duan et al. 2017):
``z = encode(demo)`` and ``a = pi(s, z)``. Training samples two demonstrations of the same task,
conditions on one and does behaviour cloning on the other's (state, action) pairs, so the only
way to lower the loss is to read the task off the conditioning demonstration.

Encoders (``OneShotConfig.encoder``):

- ``"final_state"``: z = MLP(last observation of the demo).
- ``"mean_pool"``: z = mean over steps of MLP(step), a step being (o_t, a_t, o_{t+1}).
- ``"attention"``: multi-head soft attention over the demo's step embeddings with a query
  computed from the current state (as in Duan et al.'s demonstration attention), so z depends
  on how far through the task the policy is.
- ``"none"``: task-blind behaviour cloning (the demo is ignored) - a lower bound.
- ``"oracle"``: no demo; z is the task itself (one one-hot per task position) - an upper bound.

Optionally a TecNet-style loss (James et al. 2018) shapes a demo-level embedding: embeddings are
L2-normalised and, within a batch of distinct tasks, each target demo must be more cosine-similar
to its own task's conditioning demo than to any other by a margin.

Shapes: B tasks in a batch, S sampled states per task, T demo steps (padded), D obs dim,
A action dim, F = 2 D + A per-step feature dim, E embedding dim.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ilcore.errors import ConfigError, FormatError

ENCODERS = ("final_state", "mean_pool", "attention", "none", "oracle")
DEMO_ENCODERS = ("final_state", "mean_pool", "attention")
DEFAULT_ENV_ID = "ilcore/ParticleSequence-v0"
CONFIG_FILE = "oneshot_config.json"
WEIGHTS_FILE = "oneshot_weights.pt"


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
            raise ValueError("TaskDemo.observations must be (T+1, D) and actions (T, A)")
        if len(self.observations) != len(self.actions) + 1:
            raise ValueError(
                f"TaskDemo has {len(self.observations)} observations for {len(self.actions)} actions; expected T+1 and T"
            )
        if len(self.actions) == 0:
            raise ValueError("TaskDemo needs at least one step")

    @property
    def length(self) -> int:
        return len(self.actions)


@dataclass
class OneShotConfig:
    """Model and training settings (JSON-able; saved next to the weights)."""

    encoder: str = "attention"  # one of ENCODERS
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
        if self.encoder not in ENCODERS:
            raise ConfigError(f"encoder must be one of {', '.join(ENCODERS)}; got {self.encoder!r}.")
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
    def from_json(cls, d: dict[str, Any]) -> "OneShotConfig":
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
    import gymnasium as gym

    import ilcore.envs  # noqa: F401  (registers the env ids)
    from ilcore.experts.particles import ParticleSequenceExpert

    env = gym.make(env_id, **(env_kwargs or {}))
    base = env.unwrapped
    rng = np.random.default_rng(seed)
    demos: list[TaskDemo] = []
    for task_id in task_ids:
        kept, attempt = 0, 0
        while kept < demos_per_task:
            attempt += 1
            if attempt > 20 * demos_per_task:
                raise RuntimeError(f"the expert keeps failing task {task_id}; is the noise ({noise}) too large?")
            obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"task_id": int(task_id)})
            expert = ParticleSequenceExpert(env.action_space, task=base.task, max_speed=base.max_speed)
            observations, actions = [obs], []
            done, info = False, {}
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
    from ilcore.data import open_recording
    from ilcore.envs.particles import task_list

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
    import gymnasium as gym

    import ilcore.envs  # noqa: F401  (registers the env ids)
    from ilcore.data import SessionWriter
    from ilcore.types import Actor, QueryReason

    kwargs = dict(env_kwargs or {})
    probe = gym.make(env_id, **kwargs)
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
class _PaddedDemos:
    """Demos padded to a common length, as torch tensors.

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

    def to(self, device: torch.device) -> "_PaddedDemos":
        return _PaddedDemos(*(t.to(device) for t in (self.feats, self.mask, self.obs, self.actions, self.final,
                                                      self.lengths, self.task_onehot)), task_ids=self.task_ids)


def _task_onehot(task: Sequence[int], slots: int, vocab: int) -> np.ndarray:
    out = np.zeros((slots, vocab), np.float32)
    for k, lm in enumerate(task[:slots]):
        if 0 <= lm < vocab:
            out[k, lm] = 1.0
    return out.reshape(-1)


def _pad(demos: Sequence[TaskDemo], slots: int, vocab: int) -> _PaddedDemos:
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
    return _PaddedDemos(
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
# Model
# ---------------------------------------------------------------------------------------------


def _mlp(sizes: Sequence[int], *, final_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DemoConditionedPolicy(nn.Module):
    """pi(a | s, z) with z from a demo encoder; deterministic, tanh-squashed mean action.

    ``encode(feats (B,T,F), mask (B,T), final (B,D), task (B,K*N), obs (B,S,D)) -> z (B,S,E)``
    and ``forward(obs (B,S,D), z (B,S,E)) -> action (B,S,A)``.
    """

    def __init__(self, config: OneShotConfig) -> None:
        super().__init__()
        self.config = config
        d, a, e, h = config.obs_dim, config.act_dim, config.embed_dim, config.encoder_hidden
        f = 2 * d + a
        mean = torch.tensor(config.obs_mean or [0.0] * d, dtype=torch.float32)
        std = torch.tensor(config.obs_std or [1.0] * d, dtype=torch.float32)
        self.register_buffer("obs_mean", mean)
        self.register_buffer("obs_std", std)
        enc = config.encoder
        z_dim = 0 if enc == "none" else e
        if enc == "final_state":
            self.final_net = _mlp([d, h, h, e])
        elif enc in ("mean_pool", "attention"):
            self.step_net = _mlp([f, h, h, e])
        if enc == "attention":
            self.query_net = _mlp([d, h, e])
            self.key = nn.Linear(e, e)
            self.value = nn.Linear(e, e)
            self.attn_out = nn.Linear(e, e)
        elif enc == "oracle":
            self.task_net = _mlp([config.task_slots * config.task_vocab, h, e])
        self.policy_net = _mlp([d + z_dim, *config.hidden, a])

    # Observations are standardised with the training data's statistics; in a step feature
    # (o_t, a_t, o_{t+1}) both observations get the same treatment and actions stay in [-1, 1].
    def norm_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def norm_feats(self, feats: torch.Tensor) -> torch.Tensor:
        d = self.config.obs_dim
        return torch.cat(
            [self.norm_obs(feats[..., :d]), feats[..., d:-d], self.norm_obs(feats[..., -d:])], dim=-1
        )

    def demo_embedding(
        self, feats: torch.Tensor, mask: torch.Tensor, final: torch.Tensor, task: torch.Tensor
    ) -> torch.Tensor | None:
        """(B, E) demo-level embedding (state-independent), or None for "none"."""
        enc = self.config.encoder
        if enc == "final_state":
            return self.final_net(self.norm_obs(final))
        if enc == "oracle":
            return self.task_net(task)
        if enc in ("mean_pool", "attention"):
            h = self.step_net(self.norm_feats(feats))  # (B, T, E)
            m = mask.unsqueeze(-1).float()
            return (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return None

    def encode(
        self,
        feats: torch.Tensor,
        mask: torch.Tensor,
        final: torch.Tensor,
        task: torch.Tensor,
        obs: torch.Tensor,
    ) -> torch.Tensor | None:
        """z (B, S, E) for S current states per demo; None for the task-blind encoder."""
        enc = self.config.encoder
        b, s = obs.shape[:2]
        if enc != "attention":
            z = self.demo_embedding(feats, mask, final, task)
            if z is None:
                return None
            if self.config.tecnet_weight > 0:
                z = nn.functional.normalize(z, dim=-1)
            return z.unsqueeze(1).expand(b, s, z.shape[-1])
        heads = self.config.heads
        e = self.config.embed_dim
        dh = e // heads
        h = self.step_net(self.norm_feats(feats))  # (B, T, E)
        t = h.shape[1]
        k = self.key(h).view(b, t, heads, dh).transpose(1, 2)  # (B, H, T, dh)
        v = self.value(h).view(b, t, heads, dh).transpose(1, 2)  # (B, H, T, dh)
        q = self.query_net(self.norm_obs(obs)).view(b, s, heads, dh).transpose(1, 2)  # (B, H, S, dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)  # (B, H, S, T)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        ctx = torch.softmax(scores, dim=-1) @ v  # (B, H, S, dh)
        return self.attn_out(ctx.transpose(1, 2).reshape(b, s, e))

    def forward(self, obs: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        x = self.norm_obs(obs)
        if z is not None:
            x = torch.cat([x, z], dim=-1)
        return torch.tanh(self.policy_net(x))

    def save(self, directory: str | Path) -> None:
        save_policy(self, directory)


    def condition(self, demo: TaskDemo) -> "ConditionedPolicy":
        """This policy told to perform ``demo``'s task: an object with ``act``/``act_batch``."""
        return ConditionedPolicy(self, demo)


class ConditionedPolicy:
    """A demo-conditioned policy with its demonstration fixed; numpy in, numpy out.

    The demo is encoded once; the attention encoder still attends per state, from cached
    step embeddings.
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
        self._padded = _pad([demo], cfg.task_slots, cfg.task_vocab)

    @torch.no_grad()
    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """(N, A) actions for (N, D) observations."""
        self.model.eval()
        o = torch.as_tensor(np.asarray(obs, np.float32)).unsqueeze(0)  # (1, N, D)
        p = self._padded
        z = self.model.encode(p.feats, p.mask, p.final, p.task_onehot, o)
        return self.model(o, z)[0].numpy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """(A,) action for one (D,) observation."""
        return self.act_batch(np.asarray(obs, np.float32)[None])[0]


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
    actions at ``states_per_task`` random steps (MSE on the tanh-squashed mean). Every task needs
    at least two demos.

    ``callback(step, {"bc_loss", "tecnet_loss"})`` runs at every logged step (50 per run).
    ``device``: where to train (see :func:`ilcore.devices.resolve_device`); the padded demos
    move there once, the batch indices are drawn on the CPU as before (so a seed gives the same
    batches on any device), and the returned model is back on the CPU.
    """
    from ilcore.devices import resolve_device
    from ilcore.progress import progress_bar

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

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = DemoConditionedPolicy(config).to(dev)
    data = _pad(demos, config.task_slots, config.task_vocab).to(dev)
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
        target = data.actions[rows, cols]  # (B, S, A)
        c = torch.as_tensor(cond_idx, device=dev)
        z = model.encode(data.feats[c], data.mask[c], data.final[c], data.task_onehot[c], obs)
        bc_loss = ((model(obs, z) - target) ** 2).sum(-1).mean()
        loss = bc_loss
        tec = torch.zeros((), device=dev)
        if config.tecnet_weight > 0 and config.encoder != "none":
            t_ = torch.as_tensor(tgt_idx, device=dev)
            tec = _tecnet_loss(
                model.demo_embedding(data.feats[c], data.mask[c], data.final[c], data.task_onehot[c]),
                model.demo_embedding(data.feats[t_], data.mask[t_], data.final[t_], data.task_onehot[t_]),
                torch.as_tensor(chosen, device=dev),
                config.tecnet_margin,
            )
            loss = loss + config.tecnet_weight * tec
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        running += (bc_loss.item(), tec.item())
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


def _tecnet_loss(support: torch.Tensor, query: torch.Tensor, task_ids: torch.Tensor, margin: float) -> torch.Tensor:
    """Cosine hinge: each query demo (B, E) must be closer to its task's support (B, E) than to
    any other task's support by ``margin``; pairs of the same task are not negatives."""
    s = nn.functional.normalize(support, dim=-1)
    q = nn.functional.normalize(query, dim=-1)
    sim = q @ s.T  # (B, B)
    pos = sim.diagonal().unsqueeze(1)
    negative = task_ids[None, :] != task_ids[:, None]
    hinge = (margin - pos + sim).clamp(min=0) * negative
    return hinge.sum(1).mean()


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@dataclass
class OneShotEval:
    """success_rate: fraction of episodes that finished the demo's task; returns/lengths (N,)."""

    success_rate: float
    mean_return: float
    returns: np.ndarray
    lengths: np.ndarray
    episodes: int


def evaluate_oneshot(
    policy: DemoConditionedPolicy,
    demo: TaskDemo,
    *,
    episodes: int = 20,
    seed: int = 0,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> OneShotEval:
    """Success of ``policy`` shown ``demo`` on ``episodes`` new initial states of the demo's task.

    The env is told the task (it must know what success means); the policy only sees the demo.
    Episodes run in lockstep so the network sees one batch per step.
    """
    import gymnasium as gym

    import ilcore.envs  # noqa: F401  (registers the env ids)

    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, got {episodes}.")
    cfg = policy.config
    kwargs = dict(cfg.env_kwargs if env_kwargs is None else env_kwargs)
    kwargs["task_id"] = demo.task_id
    kwargs.pop("task_pool", None)
    envs = [gym.make(env_id or cfg.env_id, **kwargs) for _ in range(episodes)]
    conditioned = policy.condition(demo)
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    active = np.ones(episodes, bool)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, int)
    success = np.zeros(episodes, bool)
    while active.any():
        idx = np.flatnonzero(active)
        actions = conditioned.act_batch(obs[idx])
        for j, i in enumerate(idx):
            o, r, terminated, truncated, info = envs[i].step(actions[j])
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            if terminated or truncated:
                active[i] = False
                success[i] = bool(info.get("is_success", False))
    for env in envs:
        env.close()
    return OneShotEval(float(success.mean()), float(returns.mean()), returns, lengths, episodes)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def save_policy(policy: DemoConditionedPolicy, directory: str | Path) -> Path:
    """Write ``oneshot_config.json`` and ``oneshot_weights.pt`` (a plain state dict) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(policy.config.to_json(), indent=2))
    torch.save(policy.state_dict(), out / WEIGHTS_FILE)
    return out


def load_policy(directory: str | Path) -> DemoConditionedPolicy:
    """Read a policy written by :func:`save_policy`; weights are loaded without unpickling code."""
    d = Path(directory)
    if not (d / CONFIG_FILE).is_file() or not (d / WEIGHTS_FILE).is_file():
        raise ConfigError(f"{d} is not a one-shot policy folder (it needs {CONFIG_FILE} and {WEIGHTS_FILE}).")
    try:
        config = OneShotConfig.from_json(json.loads((d / CONFIG_FILE).read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"{d / CONFIG_FILE} is not a valid one-shot config ({exc}).") from None
    if config.obs_dim < 1 or config.act_dim < 1:
        raise ConfigError(f"{d / CONFIG_FILE} does not give the observation and action sizes the policy was trained on.")
    model = DemoConditionedPolicy(config)
    try:
        state = torch.load(d / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any failure here means the checkpoint is unusable
        raise ConfigError(f"{d / WEIGHTS_FILE} could not be loaded as one-shot weights ({type(exc).__name__}).") from None
    model.eval()
    return model
