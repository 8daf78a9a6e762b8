"""Composable loss terms for training ensemble policies.

A term maps a :class:`LossBatch` to a per-member loss ``(K,)``; :class:`TotalLoss` sums
``weight * term`` over terms and over members. Summing (not averaging) over members gives each
member exactly the gradient it would get if trained alone, so an ensemble of K behaves like K
independent runs. New training objectives (RL's BC regulariser, KL to a reference policy) are
new terms, not new training loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, Sequence, TypeVar

import torch

from ilcore.errors import ConfigError
from ilcore.policies import ActionDist, CategoricalDist, ObsTensors, Policy


@dataclass
class LossBatch:
    """One minibatch as seen by every term.

    policy:  the policy being trained (K members).
    dist:    ``policy.dist(obs, per_member=True)``, computed once and shared by the terms.
    obs:     leaf tensors ``(K, B, ...)``: member k's own minibatch.
    actions: labels ``(K, B, *action_shape)`` in env units.
    weights: per-sample weights ``(K, B)`` float32, or None when every sample weighs the same
        (the trainer checks once, which saves several small ops per step on tiny networks).
    """

    policy: Policy
    dist: ActionDist
    obs: ObsTensors
    actions: torch.Tensor
    weights: torch.Tensor | None


BatchT = TypeVar("BatchT")
BatchT_contra = TypeVar("BatchT_contra", contravariant=True)


class LossTerm(Protocol[BatchT_contra]):
    """A term over one kind of batch: :class:`LossBatch` for ensemble policies (BC, PPO),
    :class:`DemoConditionedBatch` for the one-shot policy."""

    name: str
    weight: float

    def __call__(self, batch: BatchT_contra) -> torch.Tensor:
        """Per-member loss ``(K,)`` (before ``weight``)."""
        ...


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``(K, B)`` values and weights -> ``(K,)`` weighted means (an all-zero-weight row gives 0)."""
    if weights is None:
        return values.mean(1)
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1e-12)


@dataclass
class NLL:
    """Negative log-likelihood of the labels, ``-log pi_k(a | s)``, weighted per sample.

    ``beta`` > 0 gives the beta-NLL of Seitzer et al. (2022) for Gaussian heads: each sample's
    NLL is scaled by its (gradient-free) predicted ``sigma^(2 beta)``. Plain NLL scales the mean's
    gradient by ``1/sigma^2``, so a net that is confident on most states all but stops fitting
    the few it gets wrong; beta = 1 gives the mean the gradient of squared error while the
    variance is still learned. Ignored for heads without a learned variance.
    """

    weight: float = 1.0
    name: str = "nll"
    beta: float = 0.0

    def __call__(self, batch: LossBatch) -> torch.Tensor:
        nll = -batch.dist.log_prob(batch.actions)
        if self.beta > 0.0:
            scale = batch.dist.variance_weight(self.beta)
            if scale is not None:
                nll = nll * scale
        return weighted_mean(nll, batch.weights)


@dataclass
class Entropy:
    """Entropy bonus: the loss is ``-H(pi_k(. | s))``, so a positive weight keeps policies broad."""

    weight: float = 0.0
    name: str = "entropy"

    def __call__(self, batch: LossBatch) -> torch.Tensor:
        return -weighted_mean(batch.dist.entropy(), batch.weights)


@dataclass
class BCRegularizer:
    """NLL on demonstration data kept beside the main objective (e.g. RL fine-tuning).

    obs / actions: demo tensors ``(M, ...)`` resident in memory; each call draws ``batch_size``
    random demo samples shared by all members.
    """

    obs: ObsTensors
    actions: torch.Tensor
    weight: float = 1.0
    batch_size: int = 256
    generator: torch.Generator | None = None
    name: str = "bc_reg"

    def __call__(self, batch: LossBatch) -> torch.Tensor:
        m = len(self.actions)
        idx = torch.randint(m, (min(self.batch_size, m),), generator=self.generator, device=self.actions.device)
        obs = {k: v[idx] for k, v in self.obs.items()}
        return -batch.policy.log_prob(obs, self.actions[idx]).mean(1)


@dataclass
class KLToReference:
    """``KL(pi_k || reference)`` at the batch states (keeps a fine-tuned policy near, e.g., BC).

    Exact for categorical actions, a one-sample reparameterised estimate for Gaussian ones.
    The reference must have 1 member or as many as the trained policy; it is not trained.
    """

    reference: Policy
    weight: float = 1.0
    name: str = "kl_ref"

    def __call__(self, batch: LossBatch) -> torch.Tensor:
        k, b = batch.actions.shape[:2]
        with torch.no_grad():
            if self.reference.ensemble == 1:
                flat = {p: v.reshape(k * b, *v.shape[2:]) for p, v in batch.obs.items()}
                ref = self.reference.dist(flat)
                shared = True
            else:
                ref = self.reference.dist(batch.obs, per_member=True)
                shared = False
        d = batch.dist
        if isinstance(d, CategoricalDist) and isinstance(ref, CategoricalDist):
            ref_log_p = ref.log_p.reshape(k, b, *ref.log_p.shape[2:]) if shared else ref.log_p
            p = d.log_p.exp()
            # 0 * (-inf) in padded MultiDiscrete cells would be nan: mask them.
            terms = torch.where(p > 0, p * (d.log_p - ref_log_p), torch.zeros_like(p))
            kl = terms.sum((-1, -2))
        else:
            a = d.rsample()  # type: ignore[attr-defined]
            ref_lp = ref.log_prob(a.reshape(k * b, *a.shape[2:]) if shared else a)
            kl = d.log_prob(a) - (ref_lp.reshape(k, b) if shared else ref_lp)
        return weighted_mean(kl, batch.weights)


@dataclass
class DemoConditionedBatch:
    """One one-shot training batch (:mod:`ilcore.algos.oneshot`), as its terms see it.

    A demo-conditioned policy is a single network (K = 1), so its terms return ``(1,)`` and
    :class:`TotalLoss` sums them as it sums an ensemble's.

    predicted / target: ``(B, S, A)`` the policy's actions at S states of each of B target demos,
        conditioned on another demo of the same task, and the target demos' own actions there.
    support_embedding / query_embedding: ``(B, E)`` demo-level embeddings of the conditioning and
        the target demos, and task_ids ``(B,)`` their tasks; only the TecNet term reads them.
    """

    predicted: torch.Tensor
    target: torch.Tensor
    support_embedding: torch.Tensor | None = None
    query_embedding: torch.Tensor | None = None
    task_ids: torch.Tensor | None = None


@dataclass
class ActionMSE:
    """Behaviour cloning of a deterministic policy: squared error summed over action dims,
    averaged over states (the one-shot policy's tanh-squashed mean against the demo's action)."""

    weight: float = 1.0
    name: str = "action_mse"

    def __call__(self, batch: DemoConditionedBatch) -> torch.Tensor:
        return ((batch.predicted - batch.target) ** 2).sum(-1).mean().reshape(1)


@dataclass
class TecNetMargin:
    """Cosine hinge on demo embeddings (James et al. 2018): each query demo must be more
    cosine-similar to its own task's support demo than to any other task's by ``margin``;
    pairs of the same task are not negatives. Zero once the tasks are that far apart."""

    weight: float = 1.0
    margin: float = 0.1
    name: str = "tecnet_loss"

    def __call__(self, batch: DemoConditionedBatch) -> torch.Tensor:
        if batch.support_embedding is None or batch.query_embedding is None or batch.task_ids is None:
            raise ConfigError("TecNetMargin needs the batch's support and query embeddings and task ids.")
        s = torch.nn.functional.normalize(batch.support_embedding, dim=-1)
        q = torch.nn.functional.normalize(batch.query_embedding, dim=-1)
        sim = q @ s.T  # (B, B)
        pos = sim.diagonal().unsqueeze(1)
        negative = batch.task_ids[None, :] != batch.task_ids[:, None]
        hinge = (self.margin - pos + sim).clamp(min=0) * negative
        return hinge.sum(1).mean().reshape(1)


class TotalLoss(Generic[BatchT]):
    """Weighted sum of terms over one kind of batch; terms with weight 0 are skipped (no wasted compute)."""

    def __init__(self, terms: Sequence[LossTerm[BatchT]]) -> None:
        self.terms = [t for t in terms if t.weight != 0]
        if not self.terms:
            raise ConfigError("TotalLoss needs at least one term with a non-zero weight.")

    def __call__(self, batch: BatchT) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(scalar loss summed over members, {term name: (K,) detached per-member value})."""
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        for term in self.terms:
            value = term(batch)
            parts[term.name] = value.detach()
            contrib = value.sum() if term.weight == 1 else term.weight * value.sum()
            total = contrib if total is None else total + contrib
        assert total is not None
        return total, parts
