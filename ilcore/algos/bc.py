"""Behavioural cloning for ensemble policies: minimise ``-log pi(a | s)`` on labelled transitions.

All data lives in memory as tensors; minibatches are drawn by random index (no DataLoader,
no per-sample collation). Each of the K members draws its own shuffled (or bootstrapped)
minibatch stream, and all K minibatches go through the network in ONE vectorised step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

import gymnasium as gym
import numpy as np
import torch

from ilcore import spaces as ispaces
from ilcore.algos.losses import NLL, Entropy, LossBatch, LossTerm, TotalLoss
from ilcore.errors import ConfigError
from ilcore.policies import ObsTensors, Policy, make_policy
from ilcore.types import Nested

VALID_CHUNK = 8192  # validation samples per forward pass; bounds memory on big image sets


class TransitionSource(Protocol):
    """What :func:`train_bc` reads from ``ilcore.data.TransitionData`` (N samples)."""

    obs: Nested
    actions: Nested
    weights: np.ndarray | None
    episode: np.ndarray
    train_mask: np.ndarray | None
    valid_mask: np.ndarray | None
    observation_space: gym.Space
    action_space: gym.Space

    def __len__(self) -> int: ...


@dataclass
class BCConfig:
    """Options of :func:`train_bc`.

    epochs: passes over the training split (each member sees every training sample once per
        epoch, or as many bootstrap draws).
    batch_size: samples per member per gradient step.
    lr: Adam learning rate.
    weight_decay: decoupled weight decay (AdamW); 0 uses plain Adam.
    entropy_weight: weight of the entropy bonus (0: pure NLL).
    nll_beta: beta of the beta-NLL for Gaussian heads (see :class:`ilcore.algos.losses.NLL`);
        0 is the textbook -log pi(a|s). The default 1 fits the mean like squared error: on
        Pendulum-v1 from 10 expert episodes it lifted BC from about -930 to about -160 (expert
        -147; 3 seeds, see docs/benchmarks.md).
    valid_fraction: share of episodes held out for validation. Callers pass it on to
        ``load_transitions``; train_bc itself uses the data's train/valid masks and splits by
        episode with this fraction only when the data has no masks (0: no validation, so no
        early stopping).
    patience: stop after this many epochs without a better validation loss and restore the best
        weights; None trains all epochs (the best weights are still restored).
    state_noise: std of Gaussian noise added to normalised vector observations while training.
    ensemble: K members (ignored when warm-starting from a policy).
    hidden: MLP widths (ignored when warm-starting).
    head: "categorical" / "gaussian" / "mse", or None for the action space's default.
    seed: seeds the initial weights, the minibatch order and the noise.
    bootstrap: each member draws its epoch's samples with replacement (bagging) instead of a
        shuffled pass; members then differ by data as well as by initialisation.
    """

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    entropy_weight: float = 0.0
    nll_beta: float = 1.0
    valid_fraction: float = 0.1
    patience: int | None = 10
    state_noise: float = 0.0
    ensemble: int = 1
    hidden: Sequence[int] = (256, 256)
    head: str | None = None
    seed: int = 0
    bootstrap: bool = False

    def check(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}.")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}.")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}.")
        if self.ensemble < 1:
            raise ConfigError(f"ensemble must be >= 1, got {self.ensemble}.")
        if not 0 <= self.valid_fraction < 1:
            raise ConfigError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}.")
        if self.state_noise < 0:
            raise ConfigError(f"state_noise must be >= 0, got {self.state_noise}.")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience}.")


@dataclass(frozen=True)
class EpochReport:
    """What the per-epoch callback receives (epoch counts from 1)."""

    epoch: int
    epochs: int
    train_loss: float
    valid_loss: float | None
    best_valid_loss: float | None
    samples_per_s: float
    policy: Policy


@dataclass
class BCResult:
    """The trained policy (best validation weights restored) and the per-epoch history.

    history: ``{"epoch", "train_loss", "valid_loss", "seconds", "samples"}`` -> one value per
    epoch; ``valid_loss`` is NaN without a validation split. ``samples`` counts member-samples.
    """

    policy: Policy
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    stopped_early: bool = False


def _leaf_to_numpy(leaf: Any, n: int) -> np.ndarray:
    if isinstance(leaf, np.ndarray):
        return leaf
    # A lazy image array supports fancy indexing; read it all once so training never touches disk.
    return np.asarray(leaf[np.arange(n)])


def data_to_tensors(policy: Policy, data: TransitionSource) -> tuple[ObsTensors, torch.Tensor, torch.Tensor]:
    """(obs leaf tensors ``(N, ...)``, actions ``(N, *action_shape)``, weights ``(N,)``) in memory."""
    n = len(data)
    flat = ispaces.flat_from_nested(policy.observation_space, data.obs)
    obs = policy.obs_to_tensors(ispaces.nested_from_flat(
        policy.observation_space, {p: _leaf_to_numpy(v, n) for p, v in flat.items()}))
    actions = policy.actions_to_tensor(data.actions)
    weights = data.weights if getattr(data, "weights", None) is not None else np.ones(n, np.float32)
    return obs, actions, torch.as_tensor(np.asarray(weights, dtype=np.float32))


def split_by_episode(episode: np.ndarray, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (train, valid) masks putting whole episodes in validation (at least one when asked
    and more than one episode exists), so validation measures states the learner never saw."""
    episode = np.asarray(episode)
    ids = np.unique(episode)
    n_valid = int(round(valid_fraction * len(ids)))
    if valid_fraction > 0 and len(ids) > 1:
        n_valid = min(max(n_valid, 1), len(ids) - 1)
    else:
        n_valid = 0
    chosen = np.random.default_rng(seed).permutation(ids)[:n_valid]
    valid = np.isin(episode, chosen)
    return ~valid, valid


def make_adam(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], *, lr: float,
              weight_decay: float = 0.0, eps: float | None = None) -> torch.optim.Optimizer:
    """Adam (AdamW when ``weight_decay`` > 0), fused into one kernel where torch supports it.

    The same arithmetic as the textbook optimizer; for the small MLPs of imitation learning the
    per-parameter Python loop of the default implementation is a large share of a training step
    (fused was 1.5x faster on a [32, 32] MLP at batch 32 on this project's CPU machine).

    ``params`` is a list of parameters or of torch param-group dicts (e.g. an actor and a critic
    with their own ``lr``; extra keys such as a schedule's base rate are kept). ``eps`` None keeps
    torch's default (1e-8).
    """
    params = list(params)
    cls = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay} if weight_decay > 0 else {"lr": lr}
    if eps is not None:
        kwargs["eps"] = eps
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device/dtype without a fused kernel
        return cls(params, **kwargs)


def validation_nll(policy: Policy, obs: ObsTensors, actions: torch.Tensor, weights: torch.Tensor) -> float:
    """Weighted mean NLL over the samples, averaged over members (no gradient)."""
    total = torch.zeros((), dtype=torch.float64)
    n = len(actions)
    with torch.no_grad():
        for lo in range(0, n, VALID_CHUNK):
            sl = slice(lo, lo + VALID_CHUNK)
            lp = policy.log_prob({p: v[sl] for p, v in obs.items()}, actions[sl])  # (K, n)
            total += (-(lp * weights[sl]).sum(1)).mean().double()
    return float(total / weights.sum().clamp_min(1e-12))


def train_bc(
    data: TransitionSource,
    config: BCConfig | None = None,
    *,
    policy: Policy | None = None,
    progress: bool = True,
    callback: Callable[[EpochReport], bool | None] | None = None,
    extra_terms: Sequence[LossTerm] = (),
) -> BCResult:
    """Train (or, given ``policy``, continue training) an ensemble policy by behavioural cloning.

    Args:
        data: labelled transitions (``ilcore.data.TransitionData`` or anything with its fields).
        config: options; defaults to ``BCConfig()``.
        policy: warm start from this policy (its ensemble size, network and observation
            normalisation are kept); None builds a fresh one from ``config`` with normalisation
            fitted to the training split.
        progress: show a tqdm bar over epochs.
        callback: called after every epoch with an :class:`EpochReport`; returning False stops.
        extra_terms: further loss terms added to NLL and the entropy bonus.

    Returns:
        BCResult whose policy carries the best-validation weights and ``version`` bumped by one.
    """
    from tqdm.auto import tqdm

    cfg = config or BCConfig()
    cfg.check()
    n = len(data)
    if n == 0:
        raise ConfigError("The data holds no labelled transitions to train on.")
    if policy is None:
        policy = make_policy(data.observation_space, data.action_space, hidden=cfg.hidden,
                             ensemble=cfg.ensemble, head=cfg.head, seed=cfg.seed)
        fresh = True
    else:
        policy.check_spaces(data.observation_space, data.action_space, where="the training data")
        fresh = False
    k = policy.ensemble

    if getattr(data, "train_mask", None) is None or getattr(data, "valid_mask", None) is None:
        train_mask, valid_mask = split_by_episode(data.episode, cfg.valid_fraction, cfg.seed)
    else:
        train_mask, valid_mask = np.asarray(data.train_mask, bool), np.asarray(data.valid_mask, bool)
    train_idx = torch.as_tensor(np.flatnonzero(train_mask))
    valid_idx = torch.as_tensor(np.flatnonzero(valid_mask))
    n_train = len(train_idx)
    if n_train == 0:
        raise ConfigError("The training split is empty; record more episodes or lower the validation fraction.")

    obs, actions, weights = data_to_tensors(policy, data)
    if fresh:
        policy.fit_obs_normalization({p: v[train_idx] for p, v in obs.items()})
    valid_obs = {p: v[valid_idx] for p, v in obs.items()}
    valid_actions, valid_weights = actions[valid_idx], weights[valid_idx]
    # Keep only training rows resident for the hot loop, so indices need no second lookup.
    obs = {p: v[train_idx] for p, v in obs.items()}
    actions, weights = actions[train_idx], weights[train_idx]

    uniform_weights = bool(torch.all(weights == weights[0]))
    loss_fn = TotalLoss([NLL(1.0, beta=cfg.nll_beta), Entropy(cfg.entropy_weight), *extra_terms])
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = make_adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps = math.ceil(n_train / cfg.batch_size)
    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "valid_loss": [], "seconds": [], "samples": []}
    has_valid = len(valid_idx) > 0
    best_loss = math.inf
    best_state = {name: t.detach().clone() for name, t in policy.state_dict().items()}
    best_epoch, since_best, stopped_early, samples = 0, 0, False, 0
    started = time.perf_counter()

    policy.train()
    bar = tqdm(range(1, cfg.epochs + 1), desc="bc", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        epoch_start = time.perf_counter()
        if cfg.bootstrap:
            order = torch.randint(n_train, (k, n_train), generator=gen)
        else:
            order = torch.argsort(torch.rand(k, n_train, generator=gen), dim=1)  # one permutation per member
        loss_sum = torch.zeros(())
        for s in range(steps):
            idx = order[:, s * cfg.batch_size:(s + 1) * cfg.batch_size]  # (K, B)
            batch_obs = {p: v[idx] for p, v in obs.items()}
            dist = policy.dist(batch_obs, per_member=True, state_noise=cfg.state_noise, generator=gen)
            batch = LossBatch(policy, dist, batch_obs, actions[idx], None if uniform_weights else weights[idx])
            loss, _ = loss_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        samples += k * n_train
        train_loss = float(loss_sum) / (steps * k)

        valid_loss = validation_nll(policy, valid_obs, valid_actions, valid_weights) if has_valid else math.nan
        # Without validation data the last epoch counts as the best.
        score = valid_loss if has_valid else -epoch
        if score < best_loss:
            best_loss, best_epoch, since_best = score, epoch, 0
            best_state = {name: t.detach().clone() for name, t in policy.state_dict().items()}
        else:
            since_best += 1
        elapsed = time.perf_counter() - epoch_start
        history["epoch"].append(epoch)
        history["train_loss"].append(train_loss)
        history["valid_loss"].append(valid_loss)
        history["seconds"].append(time.perf_counter() - started)
        history["samples"].append(samples)
        bar.set_postfix(train=f"{train_loss:.4f}", valid=f"{valid_loss:.4f}" if has_valid else "-")
        if callback is not None:
            report = EpochReport(epoch, cfg.epochs, train_loss, valid_loss if has_valid else None,
                                 best_loss if has_valid else None, k * n_train / max(elapsed, 1e-9), policy)
            if callback(report) is False:
                stopped_early = True
                break
        if has_valid and cfg.patience is not None and since_best >= cfg.patience:
            stopped_early = True
            break
    bar.close()

    policy.load_state_dict(best_state)
    policy.eval()
    policy.version += 1
    return BCResult(policy=policy, history=history, best_epoch=best_epoch, stopped_early=stopped_early)
