"""PPO's loss terms, written as :mod:`ilcore.algos.losses` terms so they compose with BC's.

The actor loss of one PPO minibatch is a :class:`~ilcore.algos.losses.TotalLoss` over
:class:`ClippedSurrogate`, :class:`~ilcore.algos.losses.Entropy` (bonus),
:class:`~ilcore.algos.losses.BCRegularizer` (DAPG-style auxiliary NLL on demonstrations, with the
weight ``lambda0 * lambda1**k`` set by :class:`DecayingWeight` at policy iteration k) and
:class:`~ilcore.algos.losses.KLToReference` (KL to the frozen BC policy). Rollout samples that are
not real transitions (NEXT_STEP reset steps) carry weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ilcore.algos.losses import LossBatch, weighted_mean
from ilcore.errors import ConfigError


@dataclass
class PPOBatch(LossBatch):
    """A :class:`LossBatch` with what the clipped objective needs, all ``(K, B)``.

    actions:       the actions taken in the rollout (env units).
    weights:       1 for real transitions, 0 for padding / reset steps.
    old_log_prob:  ``log pi_old(a | s)`` of the member that acted, recorded during the rollout.
    advantages:    GAE advantages, already normalised if the trainer does so.
    log_ratio:     ``log pi(a | s) - old_log_prob``, filled in by :class:`ClippedSurrogate` so
                   the trainer's KL / clip-fraction statistics need not evaluate it again.
    """

    old_log_prob: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    log_ratio: torch.Tensor | None = None  # set (detached) by ClippedSurrogate for the trainer's statistics


MAX_LOG_RATIO = 20.0


@dataclass
class ClippedSurrogate:
    """PPO's clipped objective as a loss: ``-min(rho A, clip(rho, 1-eps, 1+eps) A)`` per sample."""

    clip: float = 0.2
    weight: float = 1.0
    name: str = "policy"

    def __call__(self, batch: LossBatch) -> torch.Tensor:
        if not isinstance(batch, PPOBatch) or batch.old_log_prob is None or batch.advantages is None:
            raise ConfigError("ClippedSurrogate needs a PPOBatch with old_log_prob and advantages.")
        # Bounded so one sample cannot make the loss infinite: a squashed action sampled where the
        # policy's pre-squash mean lies far outside [-1, 1] sits in the Gaussian's far tail, and
        # moving that mean a little changes its log-probability by thousands (exp overflows).
        # Beyond the bound the sample gives no gradient, which is what the clip intends anyway.
        log_ratio = (batch.dist.log_prob(batch.actions) - batch.old_log_prob).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
        batch.log_ratio = log_ratio.detach()
        ratio = torch.exp(log_ratio)
        unclipped = ratio * batch.advantages
        clipped = ratio.clamp(1.0 - self.clip, 1.0 + self.clip) * batch.advantages
        return weighted_mean(-torch.minimum(unclipped, clipped), batch.weights)


@dataclass(frozen=True)
class DecayingWeight:
    """``start * decay**k``: the DAPG auxiliary-loss weight ``lambda0 * lambda1**k`` at iteration k."""

    start: float
    decay: float = 1.0

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ConfigError(f"A regulariser weight must be >= 0, got {self.start}.")
        if not 0.0 < self.decay <= 1.0:
            raise ConfigError(f"A weight decay factor must be in (0, 1], got {self.decay}.")

    def __call__(self, k: int) -> float:
        return self.start * self.decay ** k
