"""Ensemble policies: shapes for every space, head math, disagreement, checkpoints."""

from __future__ import annotations

import json
import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces as S

from ilcore.errors import ConfigError
from ilcore.policies import Policy, make_policy
from ilcore.spaces import stack
from tests.support.demos import cartpole_pd_action, make_rollout_demos

OBS_SPACES = {
    "box": S.Box(-1.0, 1.0, (3,), np.float32),
    "image": S.Box(0, 255, (40, 40, 3), np.uint8),
    "small-image": S.Box(0, 255, (12, 12, 1), np.uint8),
    "discrete": S.Discrete(5, start=2),
    "multidiscrete": S.MultiDiscrete([2, 3]),
    "multibinary": S.MultiBinary(4),
    "dict": S.Dict({"img": S.Box(0, 255, (12, 12, 3), np.uint8), "pos": S.Box(-5, 5, (2,)), "mode": S.Discrete(3)}),
    "tuple": S.Tuple((S.Box(-1, 1, (2,)), S.MultiBinary(2))),
}
ACTION_SPACES = {
    "discrete": (S.Discrete(4, start=-1), "categorical"),
    "multidiscrete": (S.MultiDiscrete([2, 5]), "categorical"),
    "multibinary": (S.MultiBinary(3), "categorical"),
    "bounded-box": (S.Box(-2.0, 3.0, (2,), np.float32), "gaussian"),
    "unbounded-box": (S.Box(-np.inf, np.inf, (2, 2), np.float32), "gaussian"),
    "mse-box": (S.Box(-1.0, 1.0, (2,), np.float32), "mse"),
}


def _batch(space: gym.Space, n: int, seed: int = 0):
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    return samples, stack(space, samples)


@pytest.mark.parametrize("obs_name", [
    # Observations with image leaves build a CNN per case (about 0.8 s of CPU each): the full run only.
    pytest.param(name, marks=pytest.mark.slow) if name in ("image", "small-image", "dict") else name
    for name in sorted(OBS_SPACES)
])
@pytest.mark.parametrize("act_name", sorted(ACTION_SPACES))
def test_every_space_gives_actions_of_the_space_and_survives_a_round_trip(obs_name, act_name, tmp_path):
    obs_space = OBS_SPACES[obs_name]
    act_space, head = ACTION_SPACES[act_name]
    policy = make_policy(obs_space, act_space, hidden=(16,), ensemble=3, head=head, cnn_features=8, seed=0)
    samples, batch = _batch(obs_space, 5)
    out = policy.predict_ensemble(batch)
    shape = () if isinstance(act_space, S.Discrete) else act_space.shape
    assert out.action.shape == (5, *shape)
    assert out.member_actions.shape == (3, 5, *shape)
    assert out.uncertainty.shape == (5,) and np.all(out.uncertainty >= 0)
    assert all(act_space.contains(a) for a in out.action)
    assert act_space.contains(policy.act(samples[0]))
    assert act_space.contains(policy.act(samples[0], deterministic=False))
    _, acts = _batch(act_space, 5, seed=1)
    lp = policy.log_prob(policy.obs_to_tensors(batch), policy.actions_to_tensor(acts))
    assert lp.shape == (3, 5) and torch.isfinite(lp).all()

    policy.save(tmp_path / "ckpt")
    again = Policy.load(tmp_path / "ckpt")
    np.testing.assert_array_equal(again.predict_ensemble(batch).member_actions, out.member_actions)
    np.testing.assert_array_equal(again.predict_ensemble(batch).uncertainty, out.uncertainty)


def test_squashed_gaussian_log_prob_matches_torch_distributions():
    space = S.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    policy = make_policy(S.Box(-1, 1, (3,)), space, hidden=(8,), ensemble=2, seed=3)
    obs = policy.obs_to_tensors(np.random.default_rng(0).uniform(-1, 1, (6, 3)).astype(np.float32))
    actions = torch.as_tensor(np.random.default_rng(1).uniform([-1.9, 0.05], [1.9, 0.95], (6, 2)), dtype=torch.float32)
    d = policy.dist(obs)
    from torch.distributions import AffineTransform, Independent, Normal, TanhTransform, TransformedDistribution

    center = torch.tensor([0.0, 0.5])
    half = torch.tensor([2.0, 0.5])
    ref = TransformedDistribution(Independent(Normal(d.mean, d.log_std.exp()), 1),
                                  [TanhTransform(), AffineTransform(center, half)])
    torch.testing.assert_close(d.log_prob(actions), ref.log_prob(actions), rtol=1e-4, atol=1e-4)


def test_labels_on_the_bounds_get_a_finite_log_prob():
    policy = make_policy(S.Box(-1, 1, (2,)), S.Box(-2.0, 2.0, (1,)), hidden=(8,), seed=0)
    lp = policy.log_prob(policy.obs_to_tensors(np.zeros((2, 2), np.float32)), torch.tensor([[2.0], [-2.0]]))
    assert torch.isfinite(lp).all()


def test_categorical_log_prob_matches_log_softmax_for_multidiscrete():
    policy = make_policy(S.Box(-1, 1, (2,)), S.MultiDiscrete([2, 4], start=[1, -2]), hidden=(8,), seed=0)
    obs = policy.obs_to_tensors(np.ones((3, 2), np.float32))
    acts = torch.tensor([[1, -2], [2, 1], [1, 0]])
    d = policy.dist(obs)
    flat = policy.head.linear(policy.trunk(policy.encoder(obs)))[0]  # member 0's raw logits (3, 6)
    expected = (torch.log_softmax(flat[:, :2], -1).gather(1, (acts[:, :1] - 1))
                + torch.log_softmax(flat[:, 2:], -1).gather(1, (acts[:, 1:] + 2))).squeeze(1)
    torch.testing.assert_close(d.log_prob(acts)[0], expected)


def test_members_are_stacked_and_computed_like_separate_networks():
    policy = make_policy(S.Box(-1, 1, (3,)), S.Discrete(2), hidden=(8, 8), ensemble=3, seed=0)
    assert policy.trunk.net[0].weight.shape == (3, 3, 8)
    x = torch.randn(4, 3)
    d = policy.dist({"": x})
    for k in range(3):
        h = x
        for layer in (policy.trunk.net[0], policy.trunk.net[2]):
            h = torch.relu(h @ layer.weight[k] + layer.bias[k])
        logits = h @ policy.head.linear.weight[k] + policy.head.linear.bias[k]
        torch.testing.assert_close(d.logits[k, :, 0], logits)


@pytest.mark.slow
def test_trained_ensemble_disagrees_more_off_distribution_than_on_it():
    from ilcore.algos.bc import BCConfig, train_bc

    data = make_rollout_demos("CartPole-v1", cartpole_pd_action, episodes=3, seed=0)
    policy = train_bc(data, BCConfig(epochs=8, ensemble=5, hidden=(64, 64), seed=0), progress=False).policy
    on = data.obs[data.valid_mask]
    off = np.random.default_rng(0).uniform([-4, -5, -0.4, -5], [4, 5, 0.4, 5], (len(on), 4)).astype(np.float32)
    out_on, out_off = policy.predict_ensemble(on), policy.predict_ensemble(off)
    assert not np.allclose(policy.trunk.net[0].weight[0].detach(), policy.trunk.net[0].weight[1].detach())
    assert out_off.uncertainty.mean() > 3 * out_on.uncertainty.mean()
    assert out_off.vote_disagreement.mean() > out_on.vote_disagreement.mean()


def test_normalisation_is_stored_in_the_checkpoint(tmp_path):
    policy = make_policy(S.Box(-10, 10, (2,)), S.Discrete(2), hidden=(4,), seed=0)
    policy.fit_obs_normalization(np.array([[1.0, 5.0], [3.0, 5.0]], np.float32))
    policy.version = 7
    policy.save(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["obs_norm"][""] == {"mean": [2.0, 5.0], "std": [1.0, 1.0]}  # constant feature -> std 1
    assert Policy.load(tmp_path).version == 7


class _Bomb:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        # Unpickling would call open(marker, "w"), creating the marker file.
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_bomb_checkpoint_is_refused_without_running_it(tmp_path, writer):
    make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(4,), seed=0).save(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "weights.pt", "wb") as f:
        if writer == "pickle":
            pickle.dump({"trunk.net.0.weight": _Bomb(str(marker))}, f)
        else:
            torch.save({"trunk.net.0.weight": _Bomb(str(marker))}, f)
    with pytest.raises(ConfigError) as err:
        Policy.load(tmp_path)
    assert not marker.exists()
    assert "\n" not in str(err.value)


def test_unreadable_checkpoints_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="No policy checkpoint"):
        Policy.load(tmp_path / "missing")
    make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(4,), seed=0).save(tmp_path / "a")
    make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(8,), seed=0).save(tmp_path / "b")
    (tmp_path / "a" / "weights.pt").replace(tmp_path / "b" / "weights.pt")
    with pytest.raises(ConfigError, match="do not match"):
        Policy.load(tmp_path / "b")
    (tmp_path / "a" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        Policy.load(tmp_path / "a")


def test_bad_head_for_the_action_space_is_a_config_error():
    with pytest.raises(ConfigError):
        make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), head="gaussian")
    with pytest.raises(ConfigError):
        make_policy(S.Box(-1, 1, (2,)), S.Box(-1, 1, (2,)), head="categorical")
    with pytest.raises(ConfigError):
        make_policy(S.Box(-1, 1, (2,)), S.Dict({"a": S.Discrete(2)}))


def test_seeded_construction_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(4,), seed=5)
    after = torch.rand(1)
    b = make_policy(S.Box(-1, 1, (2,)), S.Discrete(2), hidden=(4,), seed=5)
    assert torch.equal(before, after)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not math.isnan(float(a.predict_ensemble(np.zeros((1, 2), np.float32)).uncertainty[0]))



def test_normalisation_std_has_a_floor_of_one_percent_of_a_bounded_half_range():
    # A pendulum demo that starts upright: cos(theta) barely moves, so its fitted std is ~0.003
    # and any hanging state would reach the network as a value of several hundred.
    policy = make_policy(S.Box(np.array([-1.0, -1.0, -8.0]), np.array([1.0, 1.0, 8.0])), S.Discrete(2), hidden=(4,), seed=0)
    x = np.stack([np.full(40, 0.998), np.linspace(-0.05, 0.05, 40), np.linspace(-2.0, 2.0, 40)], 1).astype(np.float32)
    x[::2, 0] += 0.002
    policy.fit_obs_normalization(x)
    std = policy.encoder.norm_stats()[""]["std"]
    assert std[0] == pytest.approx(0.01)  # floored: 1% of the half-range 1
    assert std[2] == pytest.approx(float(x[:, 2].std()), rel=1e-5)  # above the floor (0.08): as fitted
    unbounded = make_policy(S.Box(-np.inf, np.inf, (1,)), S.Discrete(2), hidden=(4,), seed=0)
    unbounded.fit_obs_normalization(np.array([[0.0], [0.002]], np.float32))
    assert unbounded.encoder.norm_stats()[""]["std"][0] == pytest.approx(0.001)  # no bounds, no floor
