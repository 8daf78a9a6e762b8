"""Behavioural cloning for ensemble policies: minimise ``-log pi(a | s)`` on labelled transitions.

All data lives in memory as tensors; minibatches are drawn by random index (no DataLoader,
no per-sample collation). Each of the K members draws its own shuffled (or bootstrapped)
minibatch stream, and all K minibatches go through the network in ONE vectorised step.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import gymnasium as gym
import numpy as np
import torch

from ilcore.algos.bc_config import BCConfig as BCConfig  # re-exported: defined apart so options need no torch
from ilcore.algos.batches import VALID_CHUNK, Batch, BatchSource, ResidentBatches, StreamedBatches
from ilcore.algos.batches import data_to_tensors as data_to_tensors  # re-exported: PPO and tests use it
from ilcore.algos.losses import NLL, Entropy, LossBatch, LossTerm, TotalLoss
from ilcore import distributed
from ilcore.data.dataset import split_by_episode
from ilcore.data.stream import choose_data_mode, lazy_leaves
from ilcore.devices import resolve_device
from ilcore.errors import ConfigError, UserError
from ilcore.policies import ObsTensors, Policy, make_policy
from ilcore.progress import progress_bar, show_status
from ilcore.types import Nested


class TransitionSource(Protocol):
    """What :func:`train_bc` reads from ``ilcore.data.TransitionData`` (N samples).

    Read-only properties, so a source whose ``weights`` or masks are always arrays conforms too
    (a plain attribute ``np.ndarray | None`` would have to accept None being written)."""

    @property
    def obs(self) -> Nested: ...
    @property
    def actions(self) -> Nested: ...
    @property
    def weights(self) -> np.ndarray | None: ...
    @property
    def episode(self) -> np.ndarray: ...
    @property
    def train_mask(self) -> np.ndarray | None: ...
    @property
    def valid_mask(self) -> np.ndarray | None: ...
    @property
    def observation_space(self) -> gym.Space: ...
    @property
    def action_space(self) -> gym.Space: ...

    def __len__(self) -> int: ...


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
    train_nll: float = math.nan  # plain -log pi on the training batches: comparable with valid_loss
    best_epoch: int = 0
    # Builds a BCTrainState of the run after this epoch (copies tensors; call it only when saving).
    state: Callable[[], "BCTrainState"] | None = None


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
    interrupted: bool = False  # should_stop said so: the weights are the best of the epochs finished
    final_state: "BCTrainState | None" = None  # where a resumed run continues (None when interrupted before epoch 1 ended)


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
    param_list: list[Any] = list(params)
    cls = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay} if weight_decay > 0 else {"lr": lr}
    if eps is not None:
        kwargs["eps"] = eps
    try:
        return cls(param_list, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device/dtype without a fused kernel
        return cls(param_list, **kwargs)


def validation_sums(policy: Policy, chunks: Iterable[Batch]) -> torch.Tensor:
    """``[sum of weighted NLL (mean over members), sum of weights]`` (float64, no gradient) over
    chunks of ``(obs (n, ...), actions (n, ...), weights (n,))``; sums so ranks can add theirs."""
    total = torch.zeros(2, dtype=torch.float64, device=policy.device)
    with torch.no_grad():
        for obs, actions, weights in chunks:
            lp = policy.log_prob(obs, actions)  # (K, n)
            total[0] += (-(lp * weights).sum(1)).mean().double()
            total[1] += weights.sum().double()
    return total


def validation_nll(policy: Policy, obs: ObsTensors, actions: torch.Tensor, weights: torch.Tensor) -> float:
    """Weighted mean NLL over the samples, averaged over members (no gradient)."""
    chunks = (({p: v[lo:lo + VALID_CHUNK] for p, v in obs.items()}, actions[lo:lo + VALID_CHUNK],
               weights[lo:lo + VALID_CHUNK]) for lo in range(0, len(actions), VALID_CHUNK))
    total = validation_sums(policy, chunks)
    return float(total[0] / total[1].clamp_min(1e-12))


class BCTrainer:
    """Behavioural cloning one epoch at a time: :meth:`epoch` trains one pass and returns its
    :class:`EpochReport`; :attr:`done` says when the run has ended (all epochs, patience, the
    callback, or ``should_stop``); :meth:`finish` restores the best weights and hands back the
    :class:`BCResult`. :func:`train_bc` is this loop with a progress bar; its arguments (but
    ``progress``) are the constructor's, with the same meaning.

    The constructor does the preparation (the policy, the split, the data source, normalisation,
    optimizer and random streams, a resumed state); nothing is trained until :meth:`epoch`.
    """

    def __init__(
        self,
        data: TransitionSource,
        config: BCConfig | None = None,
        *,
        policy: Policy | None = None,
        callback: Callable[[EpochReport], bool | None] | None = None,
        extra_terms: Sequence[LossTerm[LossBatch]] = (),
        should_stop: Callable[[], bool] | None = None,
        resume: "BCTrainState | None" = None,
    ) -> None:
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
        ctx = distributed.current()
        self.home = next(policy.parameters()).device
        device = resolve_device(cfg.device, local_rank=ctx.local_rank)
        policy.to(device)

        if getattr(data, "train_mask", None) is None or getattr(data, "valid_mask", None) is None:
            train_mask, valid_mask = split_by_episode(data.episode, cfg.valid_fraction, cfg.seed)
        else:
            train_mask, valid_mask = np.asarray(data.train_mask, bool), np.asarray(data.valid_mask, bool)
        train_idx = torch.as_tensor(np.flatnonzero(train_mask))
        valid_idx = torch.as_tensor(np.flatnonzero(valid_mask))
        n_train = len(train_idx)
        if n_train == 0:
            raise ConfigError("The training split is empty; record more episodes or lower the validation fraction.")

        frames = lazy_leaves(policy.observation_space, data.obs)
        data_mode = choose_data_mode(frames, cfg.data_mode, device=device, processes=ctx.local_world_size)
        # Each rank validates on its share of the held-out rows; the sums are added across ranks.
        my_valid = valid_idx.numpy()[ctx.rank::ctx.world_size]
        self.source: BatchSource
        if data_mode == "stream":
            self.source = StreamedBatches(policy, data, train_idx.numpy(), my_valid, frames, workers=cfg.workers,
                                          processes=ctx.local_world_size)
        else:
            self.source = ResidentBatches(policy, data, train_idx.numpy(), my_valid)
        if fresh:
            policy.fit_obs_normalization(self.source.norm_obs)
        distributed.broadcast_state(policy)  # every rank starts from rank 0's weights and statistics

        self.config, self.policy, self.k, self.ctx, self.device, self.n_train = cfg, policy, policy.ensemble, ctx, device, n_train
        self.callback, self.should_stop = callback, should_stop
        terms: list[LossTerm[LossBatch]] = [NLL(1.0, beta=cfg.nll_beta), Entropy(cfg.entropy_weight), *extra_terms]
        self.loss_fn = TotalLoss(terms)
        self.params = [p for p in policy.parameters() if p.requires_grad]
        self.optimizer = make_adam(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        # A CPU generator cannot draw on a GPU; on CPU one generator keeps runs as before.
        self.noise_gen = self.gen if device.type == "cpu" else torch.Generator(device).manual_seed(cfg.seed)
        steps = math.ceil(n_train / cfg.batch_size)
        self.steps = steps if cfg.steps_per_epoch is None else min(steps, cfg.steps_per_epoch)
        self.history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "train_nll": [], "valid_loss": [],
                                                "seconds": [], "samples": []}
        self.has_valid = len(valid_idx) > 0
        self.best_loss = math.inf
        self.best_state = {name: t.detach().clone() for name, t in policy.state_dict().items()}
        self.best_epoch, self.since_best, self.samples = 0, 0, 0
        self.stopped_early = False
        self.interrupted = False  # should_stop said so: the weights are the best of the epochs finished
        self.next_epoch, seconds_before = 1, 0.0
        self.resumed = resume is not None
        if resume is not None:
            policy.load_state_dict(resume.weights)
            self.optimizer.load_state_dict(resume.optimizer)
            self.gen.set_state(resume.generator)
            if self.noise_gen is not self.gen and resume.noise_generator is not None:
                self.noise_gen.set_state(resume.noise_generator)
            self.best_state = {name: t.to(device) for name, t in resume.best_weights.items()}
            self.best_loss, self.best_epoch, self.since_best = resume.best_loss, resume.best_epoch, resume.since_best
            self.history = {key: list(vals) for key, vals in resume.history.items()}
            self.history.setdefault("train_nll", [math.nan] * len(self.history["epoch"]))
            self.samples, self.next_epoch = resume.samples, resume.epoch + 1
            seconds_before = self.history["seconds"][-1] if self.history["seconds"] else 0.0
        self.started = time.perf_counter() - seconds_before
        self.last_done = 0  # the last epoch trained to its end by this trainer
        # Plain NLL on training batches only costs extra when the objective differs from it.
        self.plain_objective = cfg.entropy_weight == 0 and not extra_terms and (
            cfg.nll_beta == 0 or not isinstance(policy.action_space, gym.spaces.Box))
        self.plain_nll = NLL(1.0, beta=0.0)
        policy.train()

    @property
    def done(self) -> bool:
        """True once the run has ended: every epoch trained, or stopped early or interrupted."""
        return self.stopped_early or self.interrupted or self.next_epoch > self.config.epochs

    def snapshot(self, epoch: int) -> BCTrainState:
        """The run's state now, labelled as after ``epoch`` (tensors copied to the CPU)."""
        return BCTrainState(
            epoch=epoch, weights=_cpu_state(self.policy.state_dict()), optimizer=_cpu_optimizer_state(self.optimizer),
            generator=self.gen.get_state(),
            noise_generator=None if self.noise_gen is self.gen else self.noise_gen.get_state().cpu(),
            best_weights=_cpu_state(self.best_state), best_loss=self.best_loss, best_epoch=self.best_epoch,
            since_best=self.since_best, samples=self.samples, history={k: list(v) for k, v in self.history.items()})

    def _train_pass(self) -> tuple[float, float] | None:
        """One pass of minibatch steps: (mean objective, mean plain NLL) per member, or None when
        ``should_stop`` ended it midway (the updates made so far are kept)."""
        cfg, ctx, device, k, policy, optimizer = self.config, self.ctx, self.device, self.k, self.policy, self.optimizer
        if cfg.bootstrap:
            order = torch.randint(self.n_train, (k, self.n_train), generator=self.gen)
        else:
            order = torch.argsort(torch.rand(k, self.n_train, generator=self.gen), dim=1)  # one permutation per member
        global_batches = [order[:, s * cfg.batch_size:(s + 1) * cfg.batch_size] for s in range(self.steps)]  # (K, B)
        # Under torchrun each rank takes every world_size-th column of the global batch.
        local_batches = [distributed.rank_slice(b, ctx) for b in global_batches]
        loss_sum = torch.zeros(3, dtype=torch.float64, device=device)  # [sum of step losses, steps, sum of NLLs]
        uniform_weights = self.source.uniform_weights
        for s, (batch_obs, batch_actions, batch_weights) in enumerate(self.source.epoch(local_batches)):
            optimizer.zero_grad(set_to_none=True)
            local_b = local_batches[s].shape[1]
            if local_b > 0:
                dist = policy.dist(batch_obs, per_member=True, state_noise=cfg.state_noise,
                                   image_shift=cfg.image_shift, generator=self.noise_gen)
                batch = LossBatch(policy, dist, batch_obs, batch_actions, None if uniform_weights else batch_weights)
                loss, _ = self.loss_fn(batch)
                if self.plain_objective:
                    nll = loss.detach()
                else:
                    with torch.no_grad():
                        nll = self.plain_nll(batch).mean()
                # Scaled so the rank-average of gradients is the gradient of the global batch mean.
                share = local_b * ctx.world_size / global_batches[s].shape[1]
                (loss * share if ctx.active else loss).backward()
                loss_sum += torch.stack([loss.detach().double() * share,
                                         torch.ones((), dtype=torch.float64, device=device), nll.double() * share])
            distributed.average_gradients(self.params, ctx.world_size)
            optimizer.step()
            # Under torchrun the ranks agree on stopping once per epoch (in epoch()), never mid-epoch.
            if self.should_stop is not None and not ctx.active and self.should_stop():
                return None
        self.samples += k * min(self.n_train, self.steps * cfg.batch_size)
        loss_sum = distributed.all_reduce_sum(loss_sum)
        return (float(loss_sum[0] / loss_sum[1].clamp_min(1)) / k, float(loss_sum[2] / loss_sum[1].clamp_min(1)) / k)

    def epoch(self) -> EpochReport | None:
        """Train the next epoch, validate, keep the best weights, append to ``history`` and call the
        callback. Returns the epoch's report, or None when ``should_stop`` ended the epoch midway
        (then :attr:`done` is True)."""
        if self.done:
            raise UserError("This BC run has ended; start a new BCTrainer (or resume from its final state) "
                            "to train further.")
        cfg, ctx, device, epoch = self.config, self.ctx, self.device, self.next_epoch
        epoch_start = time.perf_counter()
        losses = self._train_pass()
        if losses is None:
            self.interrupted = True
            return None
        train_loss, train_nll = losses
        self.next_epoch = epoch + 1
        if self.has_valid:
            sums = distributed.all_reduce_sum(validation_sums(self.policy, self.source.valid_chunks()))
            valid_loss = float(sums[0] / sums[1].clamp_min(1e-12))
        else:
            valid_loss = math.nan
        # Without validation data the last epoch counts as the best.
        score = valid_loss if self.has_valid else -epoch
        if score < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best = score, epoch, 0
            self.best_state = {name: t.detach().clone() for name, t in self.policy.state_dict().items()}
        else:
            self.since_best += 1
        elapsed = time.perf_counter() - epoch_start
        history = self.history
        history["epoch"].append(epoch)
        history["train_loss"].append(train_loss)
        history["train_nll"].append(train_nll)
        history["valid_loss"].append(valid_loss)
        history["seconds"].append(time.perf_counter() - self.started)
        history["samples"].append(self.samples)
        self.last_done = epoch
        report = EpochReport(epoch, cfg.epochs, train_loss, valid_loss if self.has_valid else None,
                             self.best_loss if self.has_valid else None, self.k * self.n_train / max(elapsed, 1e-9),
                             self.policy, train_nll=train_nll, best_epoch=self.best_epoch,
                             state=partial(self.snapshot, epoch))
        if self.callback is not None:
            stop = self.callback(report) is False
            if ctx.active:  # every rank must leave the loop at the same epoch
                stop = bool(distributed.all_reduce_sum(torch.tensor([float(stop)], device=device)).item() > 0)
            if stop:
                self.stopped_early = True
                return report
        if self.should_stop is not None and ctx.active:
            wants = torch.tensor([float(self.should_stop())], device=device)
            if distributed.all_reduce_sum(wants).item() > 0:
                self.interrupted = True
                return report
        if self.has_valid and cfg.patience is not None and self.since_best >= cfg.patience:
            self.stopped_early = True
        return report

    def finish(self) -> BCResult:
        """Close the data source and return the result: the best weights restored, the policy back
        on the device it came from, in eval mode, its ``version`` bumped by one."""
        self.source.close()
        # Resume from the last finished epoch's numbers; an interrupted epoch's updates are kept.
        final_state = self.snapshot(self.last_done) if self.last_done > 0 or self.resumed else None
        policy = self.policy
        policy.load_state_dict(self.best_state)
        policy.to(self.home)
        policy.eval()
        policy.version += 1
        return BCResult(policy=policy, history=self.history, best_epoch=self.best_epoch,
                        stopped_early=self.stopped_early, interrupted=self.interrupted, final_state=final_state)


def train_bc(
    data: TransitionSource,
    config: BCConfig | None = None,
    *,
    policy: Policy | None = None,
    progress: bool = True,
    callback: Callable[[EpochReport], bool | None] | None = None,
    extra_terms: Sequence[LossTerm[LossBatch]] = (),
    should_stop: Callable[[], bool] | None = None,
    resume: "BCTrainState | None" = None,
) -> BCResult:
    """Train (or, given ``policy``, continue training) an ensemble policy by behavioural cloning
    (:class:`BCTrainer` run epoch by epoch until it is done).

    Args:
        data: labelled transitions (``ilcore.data.TransitionData`` or anything with its fields).
        config: options; defaults to ``BCConfig()``.
        policy: warm start from this policy (its ensemble size, network and observation
            normalisation are kept); None builds a fresh one from ``config`` with normalisation
            fitted to the training split.
        progress: show a tqdm bar over epochs.
        callback: called after every epoch with an :class:`EpochReport`; returning False stops.
        extra_terms: further loss terms added to NLL and the entropy bonus.
        should_stop: polled after every batch (every epoch under torchrun); True ends training
            there with the best weights of the finished epochs and ``interrupted`` set (Ctrl-C
            via :func:`ilcore.runtime.stop_on_interrupt`).
        resume: continue a run from :func:`load_train_state` (weights, optimizer, random
            streams, best-so-far and history) at the epoch after the saved one; pass the run's
            policy as ``policy``.

    Returns:
        BCResult whose policy carries the best-validation weights and ``version`` bumped by one.
    """
    trainer = BCTrainer(data, config, policy=policy, callback=callback, extra_terms=extra_terms,
                        should_stop=should_stop, resume=resume)
    cfg = trainer.config
    bar = progress_bar(total=cfg.epochs, initial=trainer.next_epoch - 1, desc="bc", unit="epoch", enabled=progress)
    try:
        while not trainer.done:
            report = trainer.epoch()
            if report is not None:
                bar.update(1)
                show_status(bar, train=f"{report.train_loss:.4f}",
                            valid=f"{report.valid_loss:.4f}" if report.valid_loss is not None else "-")
    finally:
        bar.close()
    return trainer.finish()


TRAIN_STATE_FILE = "train_state.pt"


@dataclass
class BCTrainState:
    """Everything :func:`train_bc` needs to continue a run exactly where an epoch ended.

    weights / best_weights: the policy's state dict now and at the best epoch (CPU tensors).
    optimizer: the optimizer's state dict (Adam moments and step counts).
    generator / noise_generator: ``torch.Generator.get_state()`` of the minibatch order (and of
        the state noise, when it runs on another device).
    best_loss, best_epoch, since_best: the early-stopping bookkeeping.
    history: the per-epoch history so far (see :class:`BCResult`).
    """

    epoch: int
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor
    noise_generator: torch.Tensor | None
    best_weights: dict[str, torch.Tensor]
    best_loss: float
    best_epoch: int
    since_best: int
    samples: int
    history: dict[str, list[float]]


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu", copy=True) for name, t in state.items()}


def _cpu_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    state = optimizer.state_dict()
    return {"state": {k: {n: (v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v)
                          for n, v in s.items()} for k, s in state["state"].items()},
            "param_groups": [dict(g) for g in state["param_groups"]]}


def save_train_state(folder: str | Path, state: BCTrainState) -> Path:
    """Write ``train_state.pt`` into a run folder (temp file + rename: never half-written)."""
    path = Path(folder) / TRAIN_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{TRAIN_STATE_FILE}.tmp")
    torch.save({"format": "ilcore-bc-train-state", "format_version": 1, **asdict(state)}, tmp)
    os.replace(tmp, path)
    return path


def load_train_state(folder: str | Path) -> BCTrainState:
    """Read ``train_state.pt`` from a run folder; ConfigError when it is missing or unreadable.

    Loaded with ``weights_only=True``: tensors, numbers, strings and containers only, no code.
    """
    path = Path(folder) / TRAIN_STATE_FILE
    if not path.is_file():
        raise ConfigError(f"{folder} has no {TRAIN_STATE_FILE}, so it cannot be resumed (was it written by "
                          "`ilcore train bc` with this version, and did it finish at least one epoch?).")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...: all mean "cannot resume from this"
        raise ConfigError(f"The training state {path} is unreadable ({type(exc).__name__}).") from None
    if not isinstance(doc, dict) or doc.get("format") != "ilcore-bc-train-state":
        raise ConfigError(f"{path} is not an ilcore BC training state.")
    if int(doc.get("format_version", 0)) > 1:
        raise ConfigError(f"{path} was written by a newer ilcore; upgrade ilcore to resume it.")
    try:
        return BCTrainState(**{k: doc[k] for k in BCTrainState.__dataclass_fields__})
    except KeyError as exc:
        raise ConfigError(f"The training state {path} lacks {exc.args[0]!r}.") from None

