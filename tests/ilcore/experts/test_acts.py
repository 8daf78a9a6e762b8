"""Experts and policies are both ``Acts``: one action for one observation, a batch for a batch."""

import gymnasium as gym
import numpy as np
import pytest

from ilcore.errors import ConfigError
from ilcore.eval import evaluate
from ilcore.experts import Expert, NoisyExpert, make_expert
from ilcore.experts.car_racing import CarRacingExpert
from ilcore.policies import make_policy
from ilcore.types import Acts


def test_experts_declare_acts_and_policies_conform():
    assert issubclass(Expert, Acts) and Acts in Expert.__mro__
    expert = make_expert("CartPole-v1")
    assert isinstance(expert, Acts)
    assert isinstance(NoisyExpert(expert, 0.1, rng=0), Acts)
    policy = make_policy(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), hidden=(8,))
    assert isinstance(policy, Acts)


def test_expert_act_batch_is_act_row_by_row():
    expert = make_expert("Pendulum-v1")
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    batch = expert.act_batch(obs)
    assert batch.shape == (5, 1)
    np.testing.assert_allclose(batch, np.stack([expert.act(o) for o in obs]))


def test_an_expert_is_evaluated_like_a_policy():
    result = evaluate(make_expert("CartPole-v1"), "CartPole-v1", episodes=2, num_envs=2)
    assert result.mean_return == 500.0


def test_an_expert_bound_to_one_env_refuses_a_batch():
    expert = CarRacingExpert(gym.spaces.Box(np.array([-1, 0, 0]), np.array([1, 1, 1]), dtype=np.float32))
    with pytest.raises(ConfigError, match="single observations"):
        expert.act_batch(np.zeros((2, 96, 96, 3), np.uint8))
