"""evaluate(): exact episode counts under NEXT_STEP autoreset, t-intervals, success rules."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from ilcore.errors import ConfigError, SpaceMismatchError
from ilcore.eval import evaluate, mean_ci95, student_t_quantile
from ilcore.policies import make_policy
from tests.support.demos import cartpole_pd_action


class ConstantActor:
    def __init__(self, action):
        self.action = action

    def act_batch(self, obs):
        return np.full(len(obs), self.action)


class PDExpert:
    """Has only act(), like a scripted expert."""

    def act(self, obs):
        return cartpole_pd_action(obs)


def test_t_quantiles_match_tables():
    # Two-sided 95% critical values from standard t tables.
    for dof, expected in [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (19, 2.0930), (120, 1.9799)]:
        assert student_t_quantile(0.975, dof) == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_t_quantiles_match_scipy_when_available():
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 7, 500):
        for p in (0.9, 0.995):
            assert student_t_quantile(p, dof) == pytest.approx(stats.t.ppf(p, dof), rel=1e-6)


def test_ci95_is_the_t_interval_of_the_mean():
    mean, ci = mean_ci95(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert mean == 3.0
    assert ci == pytest.approx((3.0 - half, 3.0 + half), abs=1e-6)
    assert mean_ci95(np.array([7.0]))[1] is None
    assert mean_ci95(np.array([2.0, 2.0, 2.0]))[1] == (2.0, 2.0)


def _sequential_returns(env_id, action, seed, quota):
    """What each env of the vector env should see: seed+i at the first reset, unseeded after."""
    out = []
    for i, q in enumerate(quota):
        env = gym.make(env_id)
        env.reset(seed=seed + i)
        for _ in range(q):
            ret, done = 0.0, False
            while not done:
                _, r, term, trunc, _ = env.step(action)
                ret += r
                done = term or trunc
            out.append(ret)
            env.reset()
    return out


@pytest.mark.parametrize("episodes,num_envs", [(7, 3), (4, 8), (1, 1)])
def test_counts_exactly_the_requested_episodes_and_skips_autoreset_steps(episodes, num_envs):
    result = evaluate(ConstantActor(1), "CartPole-v1", episodes=episodes, seed=5, num_envs=num_envs)
    n = min(num_envs, episodes)
    quota = [episodes // n + (i < episodes % n) for i in range(n)]
    assert result.episodes == episodes == len(result.returns) == len(result.lengths)
    np.testing.assert_array_equal(result.returns, _sequential_returns("CartPole-v1", 1, 5, quota))
    np.testing.assert_array_equal(result.returns, result.lengths)  # CartPole pays 1 per step
    assert result.success_rate == 0.0


def test_success_rules():
    assert evaluate(PDExpert(), "CartPole-v1", episodes=2, num_envs=2).success_rate == 1.0
    stuck = evaluate(ConstantActor(1), "MountainCar-v0", episodes=2, num_envs=2)
    assert stuck.success_rate == 0.0 and np.all(stuck.lengths == 200)
    assert evaluate(lambda_actor(np.zeros((1,), np.float32)), "Pendulum-v1", episodes=2).success_rate is None


def lambda_actor(action):
    class Fixed:
        def act_batch(self, obs):
            return np.repeat(action[None], len(obs), 0)

    return Fixed()


def test_policy_with_other_spaces_is_refused_and_unknown_env_is_a_config_error():
    env = gym.make("Pendulum-v1")
    policy = make_policy(env.observation_space, env.action_space, hidden=(4,), seed=0)
    with pytest.raises(SpaceMismatchError):
        evaluate(policy, "CartPole-v1", episodes=1)
    with pytest.raises(ConfigError):
        evaluate(policy, "NoSuchEnv-v7", episodes=1)
    with pytest.raises(ConfigError):
        evaluate(policy, "Pendulum-v1", episodes=0)


def test_a_learned_policy_is_evaluated_deterministically():
    env = gym.make("CartPole-v1")
    policy = make_policy(env.observation_space, env.action_space, hidden=(8,), ensemble=3, seed=0)
    a = evaluate(policy, "CartPole-v1", episodes=3, seed=2)
    b = evaluate(policy, "CartPole-v1", episodes=3, seed=2)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert set(a.to_json()) >= {"mean_return", "ci95", "episodes", "success_rate", "returns"}


def test_random_return_is_seeded_and_far_below_the_expert():
    from ilcore.eval import random_return

    a = random_return("CartPole-v1", 10, seed=5)
    assert a == random_return("CartPole-v1", 10, seed=5)
    assert 5.0 < a < 60.0  # a random CartPole policy drops the pole in a few dozen steps


def test_async_envs_give_the_same_returns_as_sync():
    """AsyncVectorEnv steps each env in its own process; with the same seeds the returns match."""
    from ilcore.experts import make_expert

    expert = make_expert("CartPole-v1")
    sync = evaluate(expert, "CartPole-v1", episodes=4, seed=3, num_envs=2)
    asyn = evaluate(expert, "CartPole-v1", episodes=4, seed=3, num_envs=2, asynchronous=True)
    np.testing.assert_array_equal(asyn.returns, sync.returns)
    np.testing.assert_array_equal(asyn.lengths, sync.lengths)


def test_async_vector_env_refuses_bad_input_with_one_sentence():
    from ilcore.errors import ConfigError
    from ilcore.eval import make_vector_env

    venv = make_vector_env("CartPole-v1", None, 2, asynchronous=True)
    try:
        assert type(venv).__name__ == "AsyncVectorEnv" and venv.num_envs == 2
    finally:
        venv.close()
    with pytest.raises(ConfigError, match="Bad env kwargs"):
        make_vector_env("CartPole-v1", {"nonsense": 1}, 2, asynchronous=True)
    with pytest.raises(ConfigError, match="num_envs"):
        make_vector_env("CartPole-v1", None, 0)
