"""Action heads: trunk features ``(K, N, F)`` -> a per-member action distribution.

Every distribution here is batched over members and samples: ``log_prob`` and ``entropy``
return ``(K, N)``; ``mode`` and ``sample`` return member actions ``(K, N, *action_shape)`` in
the env's own units (Discrete values include the space's ``start``). ``ensemble_action`` and
``disagreement`` reduce over the member axis.

Hand-written instead of ``torch.distributions`` because ``act`` runs every frame and these
classes do no argument validation and hold only the tensors they need.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ilcore.policies.networks import EnsembleLinear

# Labels at the bounds of a squashed Gaussian would need atanh(+-1) = inf; they are pulled this far
# inside (in [-1, 1] units), which keeps their log-probability finite and their gradient sane.
SQUASH_LABEL_EPS = 1e-3
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _entropy_of_probs(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy over the last axis, treating 0 log 0 as 0."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


def _jensen_shannon(p: torch.Tensor) -> torch.Tensor:
    """JSD of K member distributions ``p (K, N, ..., n)`` -> ``(N, ...)``: H(mean p) - mean H(p)."""
    p = p.double()  # float32 cancellation would make near-agreement slightly negative
    return (_entropy_of_probs(p.mean(0)) - _entropy_of_probs(p).mean(0)).clamp_min(0.0)


def _vote_disagreement(votes: torch.Tensor, n: int) -> torch.Tensor:
    """1 - (largest share of members voting the same value); ``votes (K, N, ...)`` ints in [0, n)."""
    counts = torch.nn.functional.one_hot(votes, n).sum(0)  # (N, ..., n)
    return 1.0 - counts.max(-1).values.double() / votes.shape[0]


class ActionDist:
    """Interface of the per-member distributions (see the module docstring for shapes)."""

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError

    def mode(self) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def ensemble_action(self) -> torch.Tensor:
        """The ensemble's deterministic action ``(N, *action_shape)``."""
        raise NotImplementedError

    def disagreement(self) -> torch.Tensor:
        """How much the members disagree, ``(N,)``; 0 when K = 1."""
        raise NotImplementedError

    def vote_disagreement(self) -> torch.Tensor | None:
        """1 - largest vote share ``(N,)`` for discrete actions, None for continuous ones."""
        return None

    def variance_weight(self, beta: float) -> torch.Tensor | None:
        """``sigma^(2 beta)`` per sample ``(K, N)`` (no gradient) for the beta-NLL loss, or None
        when the distribution has no learned variance (categorical, mean regression)."""
        return None


class CategoricalDist(ActionDist):
    """Independent categoricals per action dimension.

    logits: ``(K, N, D, n)`` with D = 1 for Discrete, the dims of a MultiDiscrete (padded to the
    largest n with -inf), or the bits of a MultiBinary (n = 2).
    """

    def __init__(self, logits: torch.Tensor, start: torch.Tensor, action_shape: tuple[int, ...],
                 zero_start: bool = False) -> None:
        self.logits = logits
        self.start = start  # (D,) long
        self.zero_start = zero_start  # lets log_prob skip a subtraction in the training hot loop
        self.action_shape = action_shape
        self._log_p: torch.Tensor | None = None

    @property
    def log_p(self) -> torch.Tensor:
        if self._log_p is None:
            self._log_p = torch.log_softmax(self.logits, -1)
        return self._log_p

    def _to_index(self, actions: torch.Tensor) -> torch.Tensor:
        k, n = self.logits.shape[:2]
        idx = actions.long().reshape(*actions.shape[: actions.dim() - len(self.action_shape)], -1)
        if not self.zero_start:
            idx = idx - self.start
        return idx.expand(k, n, idx.shape[-1])

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        idx = self._to_index(actions)
        picked = self.log_p.gather(-1, idx.unsqueeze(-1))  # (K, N, D, 1)
        return picked.view(picked.shape[:2]) if picked.shape[2] == 1 else picked.squeeze(-1).sum(-1)

    def entropy(self) -> torch.Tensor:
        return _entropy_of_probs(self.log_p.exp()).sum(-1)

    def _from_index(self, idx: torch.Tensor) -> torch.Tensor:
        return (idx + self.start).reshape(*idx.shape[:-1], *self.action_shape)

    def mode(self) -> torch.Tensor:
        return self._from_index(self.logits.argmax(-1))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        p = self.log_p.exp()
        flat = torch.multinomial(p.reshape(-1, p.shape[-1]), 1, generator=generator)
        return self._from_index(flat.reshape(p.shape[:-1]))

    def ensemble_action(self) -> torch.Tensor:
        # argmax of the mixture (mean of member probabilities): the ensemble's predictive mode.
        return self._from_index(self.log_p.exp().mean(0).argmax(-1))

    def disagreement(self) -> torch.Tensor:
        return _jensen_shannon(self.log_p.exp()).sum(-1).double()

    def vote_disagreement(self) -> torch.Tensor:
        return _vote_disagreement(self.logits.argmax(-1), self.logits.shape[-1]).mean(-1)


class GaussianDist(ActionDist):
    """Diagonal Gaussian per member, optionally tanh-squashed into ``[low, high]``.

    mean, log_std: ``(K, N, d)`` in pre-squash units. For the squashed case the action is
    ``center + half * tanh(u)`` and ``log_prob`` includes the tanh and scale Jacobians.
    ``entropy`` is the entropy of the Gaussian before squashing (the squashed one has no closed
    form); as a bonus term it does the same job.
    """

    def __init__(
        self,
        mean: torch.Tensor,
        log_std: torch.Tensor,
        center: torch.Tensor,
        half: torch.Tensor,
        squashed: bool,
        action_shape: tuple[int, ...],
    ) -> None:
        self.mean, self.log_std = mean, log_std
        self.center, self.half, self.squashed = center, half, squashed
        self.action_shape = action_shape

    def _flat(self, actions: torch.Tensor) -> torch.Tensor:
        lead = actions.shape[: actions.dim() - len(self.action_shape)]
        return actions.reshape(*lead, -1).to(self.mean.dtype)

    def _unflat(self, a: torch.Tensor) -> torch.Tensor:
        return a.reshape(*a.shape[:-1], *self.action_shape)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        a = self._flat(actions)
        if self.squashed:
            y = ((a - self.center) / self.half).clamp(-1 + SQUASH_LABEL_EPS, 1 - SQUASH_LABEL_EPS)
            u = torch.atanh(y)
            # log|d a / d u| = log(half) + log(1 - tanh(u)^2), per dimension.
            log_det = torch.log(self.half) + torch.log1p(-y * y)
        else:
            u, log_det = a, None
        z = (u - self.mean) * torch.exp(-self.log_std)
        lp = -0.5 * z * z - self.log_std - _HALF_LOG_2PI
        if log_det is not None:
            lp = lp - log_det
        return lp.sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 + _HALF_LOG_2PI).sum(-1)

    def variance_weight(self, beta: float) -> torch.Tensor | None:
        return torch.exp(2.0 * beta * self.log_std).mean(-1).detach()

    def _to_env(self, u: torch.Tensor) -> torch.Tensor:
        return self.center + self.half * torch.tanh(u) if self.squashed else u

    def mode(self) -> torch.Tensor:
        return self._unflat(self._to_env(self.mean))

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self._unflat(self._to_env(self.mean + noise * torch.exp(self.log_std)))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(generator)

    def ensemble_action(self) -> torch.Tensor:
        return self._unflat(self._to_env(self.mean).mean(0))

    def _normalised_means(self) -> torch.Tensor:
        # Bounded actions are compared in [-1, 1] units so one threshold fits every env.
        return torch.tanh(self.mean) if self.squashed else self.mean

    def disagreement(self) -> torch.Tensor:
        return self._normalised_means().var(0, unbiased=False).mean(-1).double()


class MeanDist(GaussianDist):
    """Deterministic mean regression ("mse" head): ``log_prob = -0.5 * squared error``.

    For bounded actions the error is measured in [-1, 1] units after the tanh squash, so the
    loss weighs every dimension alike whatever its range.
    """

    def __init__(self, mean: torch.Tensor, center: torch.Tensor, half: torch.Tensor, squashed: bool,
                 action_shape: tuple[int, ...]) -> None:
        super().__init__(mean, torch.zeros_like(mean), center, half, squashed, action_shape)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        a = self._flat(actions)
        if self.squashed:
            err = torch.tanh(self.mean) - ((a - self.center) / self.half).clamp(-1.0, 1.0)
        else:
            err = self.mean - a
        return -0.5 * (err * err).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.zeros(self.mean.shape[:2], dtype=self.mean.dtype, device=self.mean.device)

    def variance_weight(self, beta: float) -> torch.Tensor | None:
        return None

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mode()


class CategoricalHead(nn.Module):
    """Logits for Discrete / MultiDiscrete / MultiBinary actions.

    nvec: number of choices per action dimension (MultiBinary: 2 per bit); start: the value of
    choice 0 per dimension; action_shape: the shape of one env action (() for Discrete).
    """

    start: torch.Tensor  # buffers registered in __init__, declared here for the type checker
    pad_index: torch.Tensor

    def __init__(self, ensemble: int, features: int, nvec: Sequence[int], start: Sequence[int],
                 action_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.nvec = [int(n) for n in nvec]
        self.width = max(self.nvec)
        self.action_shape = action_shape
        self.linear = EnsembleLinear(ensemble, features, sum(self.nvec), init_scale=0.01)
        self.register_buffer("start", torch.as_tensor(np.asarray(start, dtype=np.int64)), persistent=False)
        self.zero_start = not any(int(v) for v in start)
        ragged = len(set(self.nvec)) > 1
        self._pad_index: torch.Tensor | None = None
        if ragged:
            # Scatter ragged logit blocks into a (D, width) grid; unused cells stay -inf.
            cols = [d * self.width + j for d, n in enumerate(self.nvec) for j in range(n)]
            self.register_buffer("pad_index", torch.as_tensor(cols), persistent=False)
            self._pad_index = self.pad_index

    def forward(self, h: torch.Tensor) -> CategoricalDist:
        flat = torch.baddbmm(self.linear.bias, h, self.linear.weight)  # (K, N, sum nvec)
        k, n = flat.shape[:2]
        d = len(self.nvec)
        if self._pad_index is None:
            logits = flat.reshape(k, n, d, self.width)
        else:
            grid = flat.new_full((k, n, d * self.width), float("-inf"))
            logits = grid.index_copy(-1, self._pad_index, flat).reshape(k, n, d, self.width)
        return CategoricalDist(logits, self.start, self.action_shape, self.zero_start)


class GaussianHead(nn.Module):
    """Mean and state-dependent log-std for Box actions; tanh-squashed when both bounds are finite.

    With ``mse=True`` only the mean is produced and the distribution is a :class:`MeanDist`.
    """

    center: torch.Tensor  # buffers registered in __init__, declared here for the type checker
    half_range: torch.Tensor

    def __init__(self, ensemble: int, features: int, low: np.ndarray, high: np.ndarray, *, mse: bool = False) -> None:
        super().__init__()
        self.action_shape = tuple(low.shape)
        d = int(np.prod(self.action_shape, dtype=np.int64))
        self.d, self.mse = d, mse
        low64, high64 = low.astype(np.float64).ravel(), high.astype(np.float64).ravel()
        self.squashed = bool(np.all(np.isfinite(low64)) and np.all(np.isfinite(high64)))
        if self.squashed:
            center, half = (high64 + low64) / 2, (high64 - low64) / 2
        else:
            center, half = np.zeros(d), np.ones(d)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32), persistent=False)
        self.register_buffer("half_range", torch.as_tensor(half, dtype=torch.float32), persistent=False)
        self.linear = EnsembleLinear(ensemble, features, d if mse else 2 * d, init_scale=0.01)

    def forward(self, h: torch.Tensor) -> GaussianDist:
        out = torch.baddbmm(self.linear.bias, h, self.linear.weight)
        if self.mse:
            return MeanDist(out, self.center, self.half_range, self.squashed, self.action_shape)
        mean, raw_log_std = out[..., : self.d], out[..., self.d :]
        # Smoothly bounded log-std: hard clamps kill the gradient at the edges.
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw_log_std) + 1.0)
        return GaussianDist(mean, log_std, self.center, self.half_range, self.squashed, self.action_shape)
