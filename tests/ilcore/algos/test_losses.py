"""Loss terms: values, weights, per-member independence, composition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces as S

from ilcore.algos.losses import NLL, BCRegularizer, Entropy, KLToReference, LossBatch, TotalLoss
from ilcore.errors import ConfigError
from ilcore.policies import make_policy


def _batch(policy, k=2, b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = {"": torch.randn(k, b, 3, generator=g)}
    if isinstance(policy.action_space, S.Discrete):
        actions = torch.randint(0, 3, (k, b), generator=g)
    else:
        actions = torch.rand(k, b, 2, generator=g) * 1.8 - 0.9
    weights = torch.ones(k, b)
    return LossBatch(policy, policy.dist(obs, per_member=True), obs, actions, weights)


@pytest.fixture(params=["discrete", "box"])
def policy(request):
    act = S.Discrete(3) if request.param == "discrete" else S.Box(-1, 1, (2,))
    return make_policy(S.Box(-1, 1, (3,)), act, hidden=(8,), ensemble=2, seed=0)


def test_nll_is_the_weighted_mean_negative_log_prob(policy):
    batch = _batch(policy)
    lp = batch.dist.log_prob(batch.actions)
    torch.testing.assert_close(NLL()(batch), -lp.mean(1))
    batch.weights[:, :2] = 0.0
    torch.testing.assert_close(NLL()(batch), -lp[:, 2:].mean(1))


def test_beta_nll_scales_gaussian_nll_by_the_detached_variance(policy):
    batch = _batch(policy)
    nll = -batch.dist.log_prob(batch.actions)
    if isinstance(policy.action_space, S.Discrete):
        # No learned variance: beta changes nothing.
        torch.testing.assert_close(NLL(beta=1.0)(batch), NLL()(batch))
        return
    sigma = torch.exp(batch.dist.log_std)  # (K, B, action dims)
    torch.testing.assert_close(NLL(beta=1.0)(batch), (nll * (sigma**2).mean(-1)).mean(1))
    torch.testing.assert_close(NLL(beta=0.5)(batch), (nll * sigma.mean(-1)).mean(1))
    # The scale carries no gradient: beta-NLL keeps NLL's minimiser.
    NLL(beta=1.0)(batch).sum().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in policy.parameters())


def test_entropy_term_is_minus_the_entropy(policy):
    batch = _batch(policy)
    torch.testing.assert_close(Entropy(weight=0.1)(batch), -batch.dist.entropy().mean(1))


def test_total_sums_terms_over_members_and_skips_zero_weights(policy):
    batch = _batch(policy)
    total, parts = TotalLoss([NLL(1.0), Entropy(0.5), Entropy(0.0, name="unused")])(batch)
    assert set(parts) == {"nll", "entropy"}
    torch.testing.assert_close(total, parts["nll"].sum() + 0.5 * parts["entropy"].sum())
    with pytest.raises(ConfigError):
        TotalLoss([Entropy(0.0)])


def test_member_losses_only_move_their_own_member(policy):
    batch = _batch(policy)
    NLL()(batch)[0].backward()
    w = policy.trunk.net[0].weight
    assert w.grad[0].abs().sum() > 0
    assert w.grad[1].abs().sum() == 0


def test_kl_to_itself_is_zero_and_to_another_policy_positive(policy):
    batch = _batch(policy)
    torch.testing.assert_close(KLToReference(policy)(batch), torch.zeros(2), atol=1e-5, rtol=0)
    other = make_policy(policy.observation_space, policy.action_space, hidden=(8,), seed=9)
    other.head.linear.weight.data *= 300  # far from the near-uniform fresh policy
    assert (KLToReference(other)(batch) > 0).all()


def test_bc_regulariser_is_nll_on_its_own_demo_batch(policy):
    batch = _batch(policy)
    # One demo, so every draw (with replacement) picks it.
    demo_obs = {"": torch.randn(1, 3)}
    demo_act = torch.tensor([2]) if isinstance(policy.action_space, S.Discrete) else torch.full((1, 2), 0.3)
    term = BCRegularizer(demo_obs, demo_act, batch_size=8)
    torch.testing.assert_close(term(batch), -policy.log_prob(demo_obs, demo_act).mean(1))
