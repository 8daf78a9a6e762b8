"""PPO that starts from an ``ilcore`` policy (BC -> RL fine-tuning) or from scratch.

One iteration is :meth:`PPOTrainer.step`: :meth:`~PPOTrainer.collect` a rollout into a typed
:class:`RolloutBatch`, then :meth:`~PPOTrainer.update` on it; :func:`train_ppo` steps until the
budget is spent. With the pieces fine-tuning needs:

* Rollouts on a gymnasium vector env with NEXT_STEP autoreset. The step after an episode ends
  only resets that env; it is stored with weight 0 and never trained on, and the observation it
  carries is the episode's *final* observation, so ``V(final obs)`` comes for free.
* Timeouts are bootstrapped apart from terminations (:func:`compute_gae`): a truncated step's
  target is ``r + gamma * V(final obs)``, a terminated step's is ``r``.
* Ensembles: member k acts in envs ``i % K == k`` and is trained on those envs' samples only,
  all K members in one vectorised pass (the ``(K, B, ...)`` layout of :mod:`ilcore.algos.losses`),
  beside a :class:`~ilcore.algos.rl.critic.Critic` with K value members.
* Fine-tuning aids: a value warm-up phase (the critic learns while the actor is frozen, so the
  first policy updates use sensible advantages instead of a random critic's), a DAPG-style
  auxiliary BC loss on demonstrations with weight ``lambda0 * lambda1**k``, a KL penalty to the
  frozen initial policy, and ``lambda * log pi_BC(a | s)`` reward shaping plus any extra reward
  functions (:mod:`ilcore.algos.rl.shaping`).

The result is the same :class:`~ilcore.policies.Policy` class and checkpoint format as BC, so a
fine-tuned policy goes straight back into DAgger and the app.

Why our own PPO and not stable-baselines3 as the engine: SB3's policies are its own classes (a
BC ensemble would have to be converted in and out on every round trip, losing the ensemble and
the squashed state-dependent Gaussian), and adding the BC / KL terms to SB3's loss means copying
its ``train()``. Here they are loss terms like BC's. SB3 stays one call away through
:func:`ilcore.algos.rl.sb3.export_to_sb3`, and ``benchmarks/rl_ppo_vs_sb3.py`` checks this loop
against it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces as gspaces

from ilcore import spaces as ispaces

from ilcore.algos.batches import data_to_tensors
from ilcore.algos.bc import make_adam
from ilcore.algos.lfo.bco import AgentExperience, collect_experience
from ilcore.algos.losses import BCRegularizer, Entropy, KLToReference, LossBatch, LossTerm, TotalLoss, weighted_mean
from ilcore.algos.rl.critic import Critic
from ilcore.algos.rl.regularizers import ClippedSurrogate, DecayingWeight, PPOBatch
from ilcore.algos.rl.shaping import RewardFn, VectorBCLogProbReward
from ilcore.devices import resolve_device
from ilcore.errors import ConfigError, UserError
from ilcore.eval import env_spaces, evaluate, make_env, make_vector_env
from ilcore.policies import Policy, make_policy
from ilcore.policies import ObsTensors
from ilcore.plots import save_return_curve
from ilcore.policies.heads import LOG_STD_MAX, LOG_STD_MIN, ActionDist, CategoricalDist, GaussianHead
from ilcore.progress import progress_bar, show_status


@dataclass
class PPOConfig:
    """Options of :func:`train_ppo` (defaults follow stable-baselines3's PPO where they overlap).

    num_envs: parallel envs (rounded up to a multiple of the policy's ensemble size K).
    async_envs: step the envs in worker processes (AsyncVectorEnv; see ``ilcore.eval.make_vector_env``).
    n_steps: steps per env per rollout; a rollout holds ``num_envs * n_steps`` samples.
    epochs: passes over each rollout.
    batch_size: samples per member per gradient step.
    lr: Adam learning rate of the critic (and of the actor unless ``policy_lr`` is set).
    policy_lr: the actor's learning rate; fine-tuning often wants it below the critic's.
    anneal_lr: decay both learning rates linearly to 0 over ``total_steps``.
    gamma: discount factor.
    gae_lambda: GAE's bias/variance trade-off.
    clip: PPO's ratio clip range epsilon.
    ent_coef: weight of the entropy bonus.
    vf_coef: weight of the value loss (mean squared error to the GAE returns).
    max_grad_norm: clip the global gradient norm of actor and critic together.
    normalize_advantage: standardise advantages per minibatch and member.
    target_kl: stop a rollout's epochs early when the approximate KL exceeds 1.5x this.
    hidden: MLP widths of a policy built from scratch (ignored when a policy is given).
    critic_hidden: MLP widths of the critic.
    init_log_std: initial log-std of a from-scratch Gaussian policy (the Policy default is
        narrow, right for BC, too narrow to explore); None keeps the default. Ignored for a
        given policy, whose spread is what BC learned.
    obs_norm_steps: env steps of uniformly random actions whose observations fit the
        normalisation of a policy built from scratch, before training (they count in the budget;
        0: none, inputs go in unscaled, as in SB3's PPO without VecNormalize). Without it a feature
        as small as MountainCar's velocity (+-0.07) reaches the network as ~0 (scaling alone does
        not solve MountainCar's exploration: no flag in 150k steps either way, 3 seeds). A given
        policy keeps the statistics it came with.
    value_warmup_steps: env steps of value warm-up: the critic trains, the actor stays frozen.
    bc_weight: lambda0 of the auxiliary BC loss on ``demos`` (0: off).
    bc_decay: lambda1; the BC weight at policy iteration k is ``bc_weight * bc_decay**k``.
    bc_batch_size: demo samples per gradient step for the BC loss.
    kl_weight: weight of ``KL(pi || pi_ref)`` at rollout states (0: off).
    shaping_weight: lambda of the ``lambda * log pi_ref(a | s)`` reward bonus (0: off).
    shaping_decay: lambda is multiplied by this after every finished episode.
    eval_every: run a deterministic evaluation at the start and every this many env steps
        (0: none during training).
    eval_episodes: episodes per evaluation.
    final_eval: evaluate once more after training.
    checkpoint_every: save policy and critic to ``out_dir`` every this many env steps (0: at the end only).
    seed: seeds the envs, the network initialisation, action sampling and minibatch order.
    device: where the networks train and act: "auto" (a CUDA GPU when torch sees one), "cpu",
        "cuda" or "cuda:N" (see :func:`ilcore.devices.resolve_device`). Env steps stay on the CPU;
        the returned policy and critic are back on the CPU.
    """

    num_envs: int = 8
    async_envs: bool = False
    n_steps: int = 128
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-4
    policy_lr: float | None = None
    anneal_lr: bool = False
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True
    target_kl: float | None = None
    hidden: Sequence[int] = (64, 64)
    critic_hidden: Sequence[int] = (64, 64)
    init_log_std: float | None = 0.0
    obs_norm_steps: int = 0
    value_warmup_steps: int = 0
    bc_weight: float = 0.0
    bc_decay: float = 1.0
    bc_batch_size: int = 256
    kl_weight: float = 0.0
    shaping_weight: float = 0.0
    shaping_decay: float = 1.0
    eval_every: int = 0
    eval_episodes: int = 10
    final_eval: bool = True
    checkpoint_every: int = 0
    seed: int = 0
    device: str = "auto"

    def check(self) -> None:
        positive = ("num_envs", "n_steps", "epochs", "batch_size", "bc_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("lr", "clip"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}.")
        if self.policy_lr is not None and not self.policy_lr > 0:
            raise ConfigError(f"policy_lr must be > 0, got {self.policy_lr}.")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        for name in ("ent_coef", "vf_coef", "max_grad_norm", "value_warmup_steps", "obs_norm_steps", "kl_weight",
                     "eval_every", "checkpoint_every", "eval_episodes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}.")
        DecayingWeight(self.bc_weight, self.bc_decay)  # validates both
        if not 0.0 < self.shaping_decay <= 1.0:
            raise ConfigError(f"shaping_decay must be in (0, 1], got {self.shaping_decay}.")
        if not math.isfinite(self.shaping_weight):
            raise ConfigError(f"shaping_weight must be finite, got {self.shaping_weight}.")


@dataclass(frozen=True)
class IterationReport:
    """What the per-iteration callback receives (one iteration = one rollout + its updates)."""

    iteration: int
    env_steps: int
    total_steps: int
    warmup: bool
    stats: Mapping[str, float]
    policy: Policy
    critic: Critic
    evals: Sequence[Mapping[str, Any]] = ()  # every evaluation so far (PPOResult.evals), newest last


@dataclass
class PPOResult:
    """The trained policy and critic, and what happened on the way.

    history: per iteration ``{"iteration", "env_steps", "warmup", "policy_loss", "value_loss",
        "entropy", "approx_kl", "clip_fraction", "bc_weight", "shaping_weight", "steps_per_s",
        "episode_return"}`` (the mean env return of episodes finished in that rollout, NaN if none).
    episodes: ``{"env_steps", "return", "length"}``: every finished training episode, with the
        env-step count when it ended and its *unshaped* return.
    evals: ``[{"env_steps", "mean_return", "ci95", ...}]`` deterministic evaluations.
    """

    policy: Policy
    critic: Critic
    history: dict[str, list[float]] = field(default_factory=dict)
    episodes: dict[str, list[float]] = field(default_factory=dict)
    evals: list[dict[str, Any]] = field(default_factory=list)
    env_steps: int = 0
    seconds: float = 0.0


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    valid: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates with timeouts bootstrapped apart from terminations.

    All inputs are ``(T, N)`` (time, env). ``next_values[t]`` is V of the observation that
    followed step t: for a step that ended its episode, V of the *final* observation.

    * terminated: the MDP ended; the target is ``r`` (nothing after it has value).
    * truncated: the episode was cut by a time limit; the target is ``r + gamma * V(final obs)``.
    * either way the advantage recursion stops there: the next sample is another episode.
    * ``valid`` False marks samples that are no transitions (NEXT_STEP reset steps); their
      advantages and returns are 0 and they must carry zero weight in the loss.

    Returns ``(advantages, returns)``, both ``(T, N)``, returns = advantages + values.
    """
    # The recursion runs in numpy: the same float32 arithmetic as torch, but T tiny steps of a
    # few envs each cost a fraction of torch's per-op overhead.
    dtype = rewards.dtype
    r = rewards.detach().cpu().numpy().astype(np.float32, copy=False)
    v = values.detach().cpu().numpy().astype(np.float32, copy=False)
    nv = next_values.detach().cpu().numpy().astype(np.float32, copy=False)
    term = terminated.cpu().numpy().astype(bool, copy=False)
    trunc = truncated.cpu().numpy().astype(bool, copy=False)
    val = valid.cpu().numpy().astype(np.float32)
    not_terminated = (~term).astype(np.float32)
    continues = (~(term | trunc)).astype(np.float32)
    g, gl = np.float32(gamma), np.float32(gamma * gae_lambda)
    delta = r + g * not_terminated * nv - v
    decay = gl * continues
    advantages = np.zeros_like(r)
    running = np.zeros_like(r[0])
    for t in reversed(range(r.shape[0])):
        running = (delta[t] + decay[t] * running) * val[t]
        advantages[t] = running
    returns = (advantages + v) * val
    return (torch.from_numpy(advantages).to(dtype=dtype, device=rewards.device),
            torch.from_numpy(returns).to(dtype=dtype, device=rewards.device))


def _set_initial_log_std(policy: Policy, log_std: float) -> None:
    """Make a fresh Gaussian head start at ``log_std`` (for every state) so RL explores."""
    head = policy.head
    if not isinstance(head, GaussianHead) or head.mse:
        return
    frac = (log_std - LOG_STD_MIN) / (0.5 * (LOG_STD_MAX - LOG_STD_MIN)) - 1.0
    if not -1.0 < frac < 1.0:
        raise ConfigError(f"init_log_std must lie strictly in ({LOG_STD_MIN}, {LOG_STD_MAX}), got {log_std}.")
    with torch.no_grad():
        head.linear.bias[..., head.d:] = math.atanh(frac)
        head.linear.weight[..., head.d:] = 0.0  # state-independent at the start, like SB3


def _to_members(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(T, N, ...)`` rollout tensor -> ``(K, T * N / K, ...)``: member k gets envs ``i % K == k``."""
    t, n = x.shape[:2]
    rest = x.shape[2:]
    return x.reshape(t, n // k, k, *rest).movedim(2, 0).reshape(k, t * (n // k), *rest)


def _sample(dist: ActionDist, generator: torch.Generator) -> torch.Tensor:
    """A sample of ``dist`` (``(K, N, ...)``). Categoricals use the Gumbel-max trick,
    ``argmax(logits - log E)`` with ``E ~ Exp(1)``: exactly the categorical distribution, and a
    few elementwise kernels instead of ``torch.multinomial``'s per-row sampler (2.5x cheaper at
    the rollout's sizes). Padded (-inf) categories are never drawn."""
    if isinstance(dist, CategoricalDist):
        logits = dist.logits  # (K, N, D, n)
        noise = torch.empty_like(logits).exponential_(generator=generator)
        idx = (logits - noise.log()).argmax(-1)
        return (idx + dist.start).reshape(*idx.shape[:-1], *dist.action_shape)
    return dist.sample(generator)


def _obs_converter(policy: Policy) -> Callable[[Any], ObsTensors]:
    """numpy batch -> leaf tensors: ``policy.obs_to_tensors``, or for a plain Box observation
    (one leaf, CPU) a direct ``torch.as_tensor`` without walking the nested structure."""
    space = policy.observation_space
    if isinstance(space, gspaces.Box) and policy.device.type == "cpu":
        (path, _), = ispaces.flat_items(space)
        dtype = policy.obs_to_tensors(space.sample()[None])[path].dtype
        return lambda obs: {path: torch.as_tensor(obs, dtype=dtype)}
    return policy.obs_to_tensors


def _shares_encoding(policy: Policy, critic: Critic) -> bool:
    """True when the critic's encoder computes exactly what the policy's does (no CNNs, same
    leaves and the same normalisation buffers): then one encoding serves both networks."""
    pe, ce = policy.encoder, critic.encoder
    if len(pe.cnns) or len(ce.cnns) or pe.leaves != ce.leaves or pe.ensemble != ce.ensemble:
        return False
    pb, cb = dict(pe.named_buffers()), dict(ce.named_buffers())
    return pb.keys() == cb.keys() and all(torch.equal(pb[name], cb[name]) for name in pb)


def _env_actions(policy: Policy, actions: torch.Tensor) -> np.ndarray:
    out = actions.cpu().numpy()
    space = policy.action_space
    if isinstance(space, gspaces.Box):
        return np.clip(out, space.low, space.high).astype(space.dtype, copy=False)
    return out.astype(policy.action_dtype, copy=False)


TRUE_REWARD_KEY = "ppo_true_reward"  # info key of the unwrapped env's reward when wrappers are given


class _KeepTrueReward(gym.Wrapper):
    """Innermost training wrapper: copies the env's own reward into ``info[TRUE_REWARD_KEY]``, so
    the returns PPO reports stay true whatever the outer wrappers do to the reward."""

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, TRUE_REWARD_KEY: float(reward)}


def _fit_normalisation_on_random_play(policy: Policy, env_id: str, env_kwargs: Mapping[str, Any] | None,
                                      steps: int, seed: int) -> int:
    """Fit ``policy``'s observation normalisation on ``steps`` steps of uniformly random actions;
    returns the env steps taken."""
    env = make_env(env_id, env_kwargs)
    env.action_space.seed(seed)
    played = AgentExperience()
    try:
        collect_experience(env, steps, lambda _obs: env.action_space.sample(), played, seed=seed + 7)
    finally:
        env.close()
    policy.fit_obs_normalization(ispaces.stack(policy.observation_space, played.obs))
    return steps


@dataclass(frozen=True)
class RolloutBatch:
    """One rollout, time-major: every tensor is ``(T, N, ...)`` (``n_steps`` x envs), on the
    training device (the role of stable-baselines3's ``RolloutBufferSamples``).

    obs: leaf path -> ``(T, N, ...)`` observation tensors, as the policy's encoder takes them.
    actions: the sampled actions, ``(T, N, *action_shape)``.
    log_probs / values: ``log pi(a | s)`` of the member acting in each env, and its critic value
        ``V(s)``, when the action was taken.
    rewards: the training reward (shaped, when shaping or wrappers are on).
    advantages / returns: GAE with timeouts bootstrapped (:func:`compute_gae`); 0 where not valid.
    valid: False for NEXT_STEP reset steps, which are no transitions and carry zero weight.
    env_steps: the trainer's env-step count once this rollout was collected.
    episode_returns: the true (unshaped) return of every episode that ended in this rollout.
    """

    obs: ObsTensors
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    valid: torch.Tensor
    env_steps: int
    episode_returns: tuple[float, ...] = ()


_ACTOR_STATS = ("policy_loss", "entropy", "approx_kl", "clip_fraction")


class PPOTrainer:
    """PPO one iteration at a time: :meth:`collect` a rollout, :meth:`update` on it, or both with
    :meth:`step` (plus the history, evaluations and checkpoints); :meth:`finish` hands back the
    :class:`PPOResult`. :func:`train_ppo` is this loop with a progress bar and a callback.

    The constructor takes :func:`train_ppo`'s arguments (``total_steps`` sets the learning-rate
    annealing and what the reports and ``history.json`` call the budget; :meth:`step` does not
    stop at it). It builds the networks and the vector env, runs the start-of-training evaluation
    when ``eval_every`` asks for one, and resets the envs with the config's seed. The envs stay
    open until :meth:`close`.
    """

    def __init__(
        self,
        env_id: str,
        total_steps: int,
        config: PPOConfig | None = None,
        *,
        policy: Policy | None = None,
        critic: Critic | None = None,
        demos: Any = None,
        reference: Policy | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        extra_rewards: Sequence[RewardFn] = (),
        wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
        out_dir: str | Path | None = None,
    ) -> None:
        cfg = config or PPOConfig()
        cfg.check()
        device = resolve_device(cfg.device)
        if total_steps < 1:
            raise ConfigError(f"total_steps must be >= 1, got {total_steps}.")
        if cfg.bc_weight > 0 and demos is None:
            raise ConfigError("A BC regulariser weight needs demonstrations to regularise towards; pass demos.")
        needs_reference = cfg.kl_weight > 0 or cfg.shaping_weight != 0
        if needs_reference and policy is None and reference is None:
            raise ConfigError("KL and log-prob shaping need a reference policy; start from a BC policy or pass one.")

        # The spaces, before building anything heavy (a bad env id fails here).
        obs_space, act_space = env_spaces(env_id, env_kwargs)
        norm_steps = 0
        if policy is None:
            policy = make_policy(obs_space, act_space, hidden=cfg.hidden, seed=cfg.seed)
            if cfg.init_log_std is not None:
                _set_initial_log_std(policy, cfg.init_log_std)
            if cfg.obs_norm_steps > 0:
                norm_steps = _fit_normalisation_on_random_play(policy, env_id, env_kwargs, cfg.obs_norm_steps, cfg.seed)
        else:
            if cfg.obs_norm_steps > 0:
                raise ConfigError("obs_norm_steps fits the normalisation of a policy built from scratch; a given "
                                  "policy keeps the statistics it was trained with.")
            policy.check_spaces(obs_space, act_space, where=env_id)
        k = policy.ensemble
        if needs_reference and reference is None:
            reference = copy.deepcopy(policy)
        if reference is not None:
            reference.check_spaces(obs_space, act_space, where=env_id)
            reference.eval()
            reference.requires_grad_(False)
        if critic is None:
            critic = Critic.for_policy(policy, cfg.critic_hidden, seed=cfg.seed + 1)
        elif critic.ensemble != k:
            raise ConfigError(f"The critic has {critic.ensemble} members but the policy has {k}.")
        policy.to(device)
        critic.to(device)
        if reference is not None:
            reference.to(device)

        n_envs = math.ceil(cfg.num_envs / k) * k
        # The innermost wrapper keeps the env's own reward in info, for the true returns reported.
        venv = make_vector_env(env_id, env_kwargs, n_envs, [_KeepTrueReward, *wrappers] if wrappers else (),
                               asynchronous=cfg.async_envs)
        if wrappers and (ispaces.space_key(venv.single_observation_space) != ispaces.space_key(obs_space)
                         or ispaces.space_key(venv.single_action_space) != ispaces.space_key(act_space)):
            venv.close()
            raise ConfigError("The training-env wrappers must not change the observation or action space.")
        self.shaping: VectorBCLogProbReward | None = None
        if cfg.shaping_weight != 0 or extra_rewards:
            self.shaping = VectorBCLogProbReward(venv, reference, cfg.shaping_weight, decay=cfg.shaping_decay,
                                                 extra_rewards=extra_rewards)
            venv = self.shaping

        self.gen = torch.Generator().manual_seed(cfg.seed)
        # A CPU generator cannot draw on a GPU; on the CPU the one generator keeps seeded runs as they were.
        self.device_gen = self.gen if device.type == "cpu" else torch.Generator(device).manual_seed(cfg.seed)
        self.bc_schedule = DecayingWeight(cfg.bc_weight, cfg.bc_decay)
        terms: list[LossTerm[LossBatch]] = [ClippedSurrogate(clip=cfg.clip), Entropy(cfg.ent_coef)]
        self.bc_term: BCRegularizer | None = None
        if cfg.bc_weight > 0:
            policy.check_spaces(demos.observation_space, demos.action_space, where="the demonstrations")
            demo_obs, demo_actions, _ = data_to_tensors(policy, demos)
            self.bc_term = BCRegularizer(demo_obs, demo_actions, weight=cfg.bc_weight,
                                         batch_size=cfg.bc_batch_size, generator=self.device_gen)
            terms.append(self.bc_term)
        if cfg.kl_weight > 0:
            assert reference is not None
            terms.append(KLToReference(reference, weight=cfg.kl_weight))
        self.actor_loss_fn = TotalLoss(terms)

        policy_lr = cfg.policy_lr or cfg.lr
        self.optimizer = make_adam(  # fused kernel where torch has one: same arithmetic, less per-step overhead
            [{"params": list(policy.parameters()), "lr": policy_lr, "base_lr": policy_lr},
             {"params": list(critic.parameters()), "lr": cfg.lr, "base_lr": cfg.lr}],
            lr=cfg.lr, eps=1e-5,  # as SB3: avoids huge steps on parameters whose gradients are near 0
        )
        self.all_params = [p for group in self.optimizer.param_groups for p in group["params"]]

        self.env_id, self.env_kwargs, self.total_steps, self.out_dir = env_id, env_kwargs, total_steps, out_dir
        self.config, self.device, self.venv, self.wrapped = cfg, device, venv, bool(wrappers)
        self.policy, self.critic, self.k, self.n_envs = policy, critic, k, n_envs
        self.to_tensors = _obs_converter(policy)
        self.shared_encoding = _shares_encoding(policy, critic)
        self.env_of_member = torch.arange(n_envs, device=device) % k  # the member that acts in env i
        self.env_index = torch.arange(n_envs, device=device)
        self.history: dict[str, list[float]] = {name: [] for name in (
            "iteration", "env_steps", "warmup", "policy_loss", "value_loss", "entropy", "approx_kl",
            "clip_fraction", "bc_weight", "shaping_weight", "steps_per_s", "episode_return")}
        self.episodes: dict[str, list[float]] = {"env_steps": [], "return": [], "length": []}
        self.evals: list[dict[str, Any]] = []
        self.result = PPOResult(policy, critic, self.history, self.episodes, self.evals)

        self.started = time.perf_counter()
        self.env_steps, self.iteration, self.policy_iteration = norm_steps, 0, 0
        self._next_eval = cfg.eval_every if cfg.eval_every > 0 else math.inf
        self._next_checkpoint = cfg.checkpoint_every if cfg.checkpoint_every > 0 else math.inf
        if cfg.eval_every > 0 and cfg.eval_episodes > 0:
            self._run_eval()

        self._obs, _ = venv.reset(seed=cfg.seed)
        self._resetting = np.zeros(n_envs, dtype=bool)  # envs whose next step only resets them
        self._ep_return = np.zeros(n_envs)
        self._ep_length = np.zeros(n_envs, dtype=np.int64)

    def _dist_and_values(self, obs_t: ObsTensors, per_member: bool = False) -> tuple[ActionDist, torch.Tensor]:
        """The policy's distributions and the critic's values, encoding the observation once
        when both encoders agree (the same numbers as ``policy.dist`` and ``critic``)."""
        policy, critic = self.policy, self.critic
        if not self.shared_encoding:
            return policy.dist(obs_t, per_member=per_member), critic(obs_t, per_member=per_member)
        h = policy.encoder(obs_t, per_member=per_member)
        return policy.head(policy.trunk(h)), critic.mlp(h).squeeze(-1)

    def _run_eval(self) -> None:
        cfg = self.config
        ev = evaluate(self.policy, self.env_id, episodes=cfg.eval_episodes, seed=cfg.seed + 10_000,
                      env_kwargs=self.env_kwargs)
        self.evals.append({"env_steps": self.env_steps, **ev.to_json()})

    def _save(self) -> None:
        if self.out_dir is not None:
            self.result.env_steps = self.env_steps
            save_run(self.out_dir, self.result, self.config, env_id=self.env_id, total_steps=self.total_steps)

    def collect(self) -> RolloutBatch:
        """Play ``n_steps`` steps in every env with the current policy (sampled actions) and return
        the rollout with its advantages; finished episodes go to ``episodes`` on the way."""
        cfg, device, k, n, t_len = self.config, self.device, self.k, self.n_envs, self.config.n_steps
        policy, venv, to_tensors = self.policy, self.venv, self.to_tensors
        env_of_member, env_index = self.env_of_member, self.env_index
        policy.train()
        buf_obs: dict[str, torch.Tensor] = {}
        buf_actions: torch.Tensor | None = None
        buf_log_prob = torch.zeros(t_len, n, device=device)
        buf_values = torch.zeros(t_len, n, device=device)
        # Env outputs stay numpy during the rollout and become tensors once at its end.
        np_rewards = np.zeros((t_len, n), dtype=np.float32)
        np_terminated = np.zeros((t_len, n), dtype=bool)
        np_truncated = np.zeros((t_len, n), dtype=bool)
        np_valid = np.zeros((t_len, n), dtype=bool)
        finished_returns: list[float] = []
        obs, resetting = self._obs, self._resetting
        ep_return, ep_length = self._ep_return, self._ep_length
        with torch.no_grad():
            for t in range(t_len):
                obs_t = to_tensors(obs)
                dist, all_values = self._dist_and_values(obs_t)  # (K, N)
                if k == 1:  # one member acts everywhere: no per-env member selection needed
                    actions = _sample(dist, self.device_gen)[0]
                    log_prob = dist.log_prob(actions)[0]
                    values = all_values[0]
                else:
                    actions = _sample(dist, self.device_gen)[env_of_member, env_index]  # each env: its member's sample
                    log_prob = dist.log_prob(actions)[env_of_member, env_index]
                    values = all_values[env_of_member, env_index]
                if not buf_obs:
                    buf_obs = {p: torch.empty(t_len, *v.shape, dtype=v.dtype, device=device)
                               for p, v in obs_t.items()}
                    buf_actions = torch.empty(t_len, *actions.shape, dtype=actions.dtype, device=device)
                for p, v in obs_t.items():
                    buf_obs[p][t] = v
                assert buf_actions is not None
                buf_actions[t] = actions
                buf_log_prob[t] = log_prob
                buf_values[t] = values
                live = ~resetting
                np_valid[t] = live

                obs, reward, terminated, truncated, info = venv.step(_env_actions(policy, actions))
                np_rewards[t] = reward
                np_terminated[t] = terminated
                np_truncated[t] = truncated

                if self.wrapped:  # resetting envs lack the key; they are not live, so 0 is fine
                    env_reward = np.asarray(info.get(TRUE_REWARD_KEY, np.zeros(n)))
                else:
                    env_reward = np.asarray(info["env_reward"]) if self.shaping is not None else reward
                self.env_steps += int(np.count_nonzero(live))
                ep_return += np.where(live, env_reward, 0.0)
                ep_length += live
                done = np.logical_or(terminated, truncated)
                if done.any():
                    for i in np.flatnonzero(done & live):
                        self.episodes["env_steps"].append(self.env_steps)
                        self.episodes["return"].append(float(ep_return[i]))
                        self.episodes["length"].append(int(ep_length[i]))
                        finished_returns.append(float(ep_return[i]))
                    ep_return[done] = 0.0
                    ep_length[done] = 0
                resetting = done
            last_values = self.critic(to_tensors(obs))[env_of_member, env_index]
        self._obs, self._resetting = obs, resetting
        assert buf_actions is not None
        rewards = torch.from_numpy(np_rewards).to(device)
        valid = torch.from_numpy(np_valid).to(device)
        next_values = torch.cat([buf_values[1:], last_values[None]], 0)
        advantages, returns = compute_gae(rewards, buf_values, next_values, torch.from_numpy(np_terminated).to(device),
                                          torch.from_numpy(np_truncated).to(device), valid, cfg.gamma, cfg.gae_lambda)
        return RolloutBatch(obs=buf_obs, actions=buf_actions, log_probs=buf_log_prob, values=buf_values,
                            rewards=rewards, advantages=advantages, returns=returns, valid=valid,
                            env_steps=self.env_steps, episode_returns=tuple(finished_returns))

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """``epochs`` passes of minibatch gradient steps on ``batch``; each ensemble member trains
        on the samples of its own envs. Until ``value_warmup_steps`` env steps the critic alone
        trains. Returns the means over the gradient steps of ``policy_loss``, ``entropy``,
        ``approx_kl``, ``clip_fraction`` (NaN during warm-up) and ``value_loss``, and ``warmup``
        (1.0 or 0.0)."""
        cfg, device, k = self.config, self.device, self.k
        policy, critic, optimizer = self.policy, self.critic, self.optimizer
        warmup = batch.env_steps <= cfg.value_warmup_steps
        if self.bc_term is not None:
            self.bc_term.weight = self.bc_schedule(self.policy_iteration)
        m_obs = {p: _to_members(v, k) for p, v in batch.obs.items()}
        m_actions = _to_members(batch.actions, k)
        m_log_prob = _to_members(batch.log_probs, k)
        m_adv = _to_members(batch.advantages, k)
        m_returns = _to_members(batch.returns, k)
        m_weights = _to_members(batch.valid, k).float()
        per_member = m_weights.shape[1]
        size = min(cfg.batch_size, per_member)
        rows = torch.arange(k, device=device)[:, None]
        # Statistics accumulate as tensors and become Python floats once per rollout.
        actor_sums = torch.zeros(len(_ACTOR_STATS), device=device)
        value_sum = torch.zeros((), device=device)
        updates = 0
        stop = False
        for _epoch in range(cfg.epochs):
            order = torch.argsort(torch.rand(k, per_member, generator=self.gen), dim=1).to(device)
            for lo in range(0, per_member - size + 1, size):
                idx = order[:, lo:lo + size]
                w = m_weights[rows, idx]
                if not bool(w.any()):
                    continue
                b_obs = {p: v[rows, idx] for p, v in m_obs.items()}
                if warmup:
                    values = critic(b_obs, per_member=True)
                else:
                    dist, values = self._dist_and_values(b_obs, per_member=True)
                value_loss = weighted_mean((values - m_returns[rows, idx]) ** 2, w).sum()
                loss = cfg.vf_coef * value_loss
                if not warmup:
                    adv = m_adv[rows, idx]
                    if cfg.normalize_advantage:
                        mean = weighted_mean(adv, w)[:, None]
                        var = weighted_mean((adv - mean) ** 2, w)[:, None]
                        adv = (adv - mean) / (var.sqrt() + 1e-8)
                    pb = PPOBatch(policy, dist, b_obs, m_actions[rows, idx], w,
                                  old_log_prob=m_log_prob[rows, idx], advantages=adv)
                    actor_loss, parts = self.actor_loss_fn(pb)
                    loss = loss + actor_loss
                    with torch.no_grad():
                        log_ratio = pb.log_ratio
                        if log_ratio is None:  # ClippedSurrogate always sets it; kept for safety
                            log_ratio = dist.log_prob(pb.actions) - m_log_prob[rows, idx]
                        ratio_m1 = torch.exp(log_ratio) - 1.0
                        kl = weighted_mean(ratio_m1 - log_ratio, w).mean()
                        clipped = (ratio_m1.abs() > cfg.clip).float()
                        actor_sums += torch.stack([
                            parts["policy"].mean(), weighted_mean(dist.entropy(), w).mean(), kl,
                            weighted_mean(clipped, w).mean()])
                    if cfg.target_kl is not None and float(kl) > 1.5 * cfg.target_kl:
                        stop = True
                if not bool(torch.isfinite(loss)):
                    raise UserError(
                        f"PPO diverged: the loss became non-finite after {batch.env_steps} env steps; "
                        "try a lower learning rate or a longer value warm-up.")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.all_params, cfg.max_grad_norm)
                optimizer.step()
                value_sum += value_loss.detach()
                updates += 1
                if stop:
                    break
            if stop:
                break
        if not warmup:
            self.policy_iteration += 1

        denom = max(updates, 1)
        stats = {name: math.nan if warmup else total / denom
                 for name, total in zip(_ACTOR_STATS, actor_sums.tolist())}
        stats["value_loss"] = float(value_sum) / k / denom
        stats["warmup"] = float(warmup)
        return stats

    def step(self) -> IterationReport:
        """One iteration: anneal the learning rates, :meth:`collect`, :meth:`update`, append to the
        history, and evaluate and checkpoint when their intervals come due."""
        cfg = self.config
        if cfg.anneal_lr:
            frac = max(0.0, 1.0 - self.env_steps / self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = frac * group["base_lr"]
        batch = self.collect()
        stats = self.update(batch)
        self.iteration += 1
        warmup = bool(stats["warmup"])

        history = self.history
        history["iteration"].append(self.iteration)
        history["env_steps"].append(self.env_steps)
        history["warmup"].append(stats["warmup"])
        for name in (*_ACTOR_STATS, "value_loss"):
            history[name].append(stats[name])
        history["bc_weight"].append(self.bc_term.weight if self.bc_term is not None else 0.0)
        history["shaping_weight"].append(self.shaping.weight if self.shaping is not None else 0.0)
        history["steps_per_s"].append(self.env_steps / max(time.perf_counter() - self.started, 1e-9))
        history["episode_return"].append(float(np.mean(batch.episode_returns)) if batch.episode_returns
                                         else math.nan)

        if self.env_steps >= self._next_eval and cfg.eval_episodes > 0:
            self._run_eval()
            while self._next_eval <= self.env_steps:
                self._next_eval += cfg.eval_every
        if self.env_steps >= self._next_checkpoint:
            self._save()
            while self._next_checkpoint <= self.env_steps:
                self._next_checkpoint += cfg.checkpoint_every
        return IterationReport(self.iteration, self.env_steps, self.total_steps, warmup,
                               {name: values[-1] for name, values in history.items()}, self.policy, self.critic,
                               evals=tuple(self.evals))

    def close(self) -> None:
        """Close the training envs (the final evaluation in :meth:`finish` plays its own)."""
        self.venv.close()

    def finish(self) -> PPOResult:
        """The result: policy and critic back on the CPU in eval mode, the policy's version bumped
        and its meta naming the run; then the final evaluation (``final_eval``) and the last save."""
        policy, critic, cfg = self.policy, self.critic, self.config
        policy.to("cpu")
        critic.to("cpu")
        policy.eval()
        policy.version += 1
        policy.meta.update({"algo": "ppo", "env_id": self.env_id, "env_kwargs": dict(self.env_kwargs or {})})
        self.result.env_steps = self.env_steps
        self.result.seconds = time.perf_counter() - self.started
        if cfg.final_eval and cfg.eval_episodes > 0 and (not self.evals or self.evals[-1]["env_steps"] != self.env_steps):
            self._run_eval()
        self._save()
        return self.result


def train_ppo(
    env_id: str,
    total_steps: int,
    config: PPOConfig | None = None,
    *,
    policy: Policy | None = None,
    critic: Critic | None = None,
    demos: Any = None,
    reference: Policy | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    extra_rewards: Sequence[RewardFn] = (),
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
    out_dir: str | Path | None = None,
    progress: bool = True,
    callback: Callable[[IterationReport], bool | None] | None = None,
) -> PPOResult:
    """Train ``policy`` (or a fresh one) with PPO on ``env_id`` for at least ``total_steps`` env steps
    (:class:`PPOTrainer` stepped until the budget is spent).

    Args:
        env_id: a registered gymnasium id (unknown ids raise ConfigError).
        total_steps: real env transitions to collect (NEXT_STEP reset steps do not count).
        config: options; defaults to ``PPOConfig()``.
        policy: the starting policy (e.g. a BC checkpoint); it is trained in place and returned.
            None builds a fresh one (``config.hidden``, ``config.init_log_std``).
        critic: a critic to continue from (e.g. a previous run's); None builds a fresh one.
        demos: labelled transitions (``ilcore.data.TransitionData`` or alike) for the BC loss;
            required when ``config.bc_weight > 0``.
        reference: the frozen policy for the KL penalty and the log-prob shaping; defaults to a
            copy of ``policy`` as it was before training.
        extra_rewards: functions ``f(obs, actions, next_obs) -> (N,)`` added to the env reward
            (e.g. a learned progress reward).
        wrappers: applied in order to each training sub-env (``wrap(env) -> env``), e.g.
            ``lambda env: EmbeddingImitationReward(env, tcn, demo_frames)`` to train on the TCN
            imitation reward; every sub-env gets its own wrapper instances, so per-env state
            (the imitation reward's clock) restarts when that env resets. They may change the
            reward but not the observation or action space. Training-episode returns in
            ``PPOResult.episodes`` and every evaluation (a fresh, unwrapped env) report the env's
            TRUE reward, never the wrapped or shaped one.
        out_dir: when given, the policy checkpoint (same format as BC's), ``critic.json`` /
            ``critic.pt``, ``history.json`` and ``curve.png`` are written here (every
            ``checkpoint_every`` steps and at the end).
        progress: show a tqdm bar over env steps.
        callback: called after every iteration with an :class:`IterationReport`; False stops.
    """
    trainer = PPOTrainer(env_id, total_steps, config, policy=policy, critic=critic, demos=demos,
                         reference=reference, env_kwargs=env_kwargs, extra_rewards=extra_rewards,
                         wrappers=wrappers, out_dir=out_dir)
    bar = progress_bar(total=total_steps, desc="ppo", unit="step", enabled=progress)
    try:
        while trainer.env_steps < total_steps:
            steps_before = trainer.env_steps
            report = trainer.step()
            bar.update(report.env_steps - steps_before)
            recent = trainer.episodes["return"][-20:]
            show_status(bar, ret=f"{np.mean(recent):.1f}" if recent else "-", warmup=report.warmup)
            if callback is not None and callback(report) is False:
                break
    finally:
        bar.close()
        trainer.close()
    return trainer.finish()


# ---------------------------------------------------------------------- run folder


def save_run(out_dir: str | Path, result: PPOResult, config: PPOConfig, *, env_id: str,
             total_steps: int) -> Path:
    """Write the policy checkpoint (BC's format), the critic, ``history.json`` and ``curve.png``."""
    out = Path(out_dir)
    result.policy.save(out)
    result.critic.save(out)
    doc = {
        "env_id": env_id,
        "total_steps": total_steps,
        "env_steps": result.env_steps,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "history": result.history,
        "episodes": result.episodes,
        "evals": result.evals,
    }
    tmp = out / ".history.json.tmp"
    tmp.write_text(json.dumps(_finite_or_none(doc), indent=1, allow_nan=False))
    tmp.replace(out / "history.json")
    save_return_curve({"ppo": (result.episodes, result.evals)}, out / "curve.png", title=f"PPO on {env_id}")
    return out


def _finite_or_none(obj: Any) -> Any:
    """A JSON-able copy: numpy scalars become Python numbers, NaN and infinities become None."""
    if isinstance(obj, Mapping):
        return {str(k): _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


__all__ = [
    "IterationReport",
    "PPOConfig",
    "PPOResult",
    "PPOTrainer",
    "RolloutBatch",
    "compute_gae",
    "save_run",
    "train_ppo",
]
