"""The shaping wrappers add exactly lambda * log pi_BC(a|s) (plus extra rewards), decaying per episode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ilcore.algos.rl.shaping import BCLogProbReward, VectorBCLogProbReward, bc_log_prob
from ilcore.errors import ConfigError
from ilcore.policies import make_policy


def _policy(env: gym.Env, ensemble: int = 1, seed: int = 0):
    p = make_policy(env.observation_space, env.action_space, hidden=(16,), ensemble=ensemble, seed=seed)
    with torch.no_grad():  # sharpen the head so log-probabilities differ clearly between actions
        p.head.linear.weight.mul_(50.0)
    return p


def _log_pi(policy, obs, action) -> float:
    o = torch.as_tensor(np.asarray(obs, np.float32))[None]
    a = torch.as_tensor(np.asarray(action))[None]
    return float(policy.log_prob({"": o}, a)[0, 0].detach())


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_single_env_wrapper_adds_lambda_log_pi(env_id):
    lam = 0.37
    plain, shaped = gym.make(env_id), BCLogProbReward(gym.make(env_id), _policy(gym.make(env_id)), lam)
    ref = shaped.shaper.reference
    obs_p, _ = plain.reset(seed=3)
    obs_s, _ = shaped.reset(seed=3)
    plain.action_space.seed(0)
    seen = set()
    for _ in range(30):
        action = plain.action_space.sample()
        expected = lam * _log_pi(ref, obs_s, action)
        obs_p, r_p, term, trunc, _ = plain.step(action)
        before = obs_s
        obs_s, r_s, _, _, info = shaped.step(action)
        assert r_s - r_p == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert info["env_reward"] == r_p
        assert info["bc_log_prob"] == pytest.approx(_log_pi(ref, before, action), rel=1e-6)
        seen.add(round(expected, 3))
        if term or trunc:
            break
    assert len(seen) > 1  # the bonus really depends on (s, a)


def test_weight_decays_after_each_episode_and_extra_rewards_add_up():
    env = gym.make("CartPole-v1")
    extra = lambda obs, act, nxt: np.full(len(act), 0.25)  # noqa: E731
    shaped = BCLogProbReward(env, _policy(env), 1.0, decay=0.5, extra_rewards=[extra])
    shaped.reset(seed=0)
    done, n = False, 0
    while not done:
        _, r, term, trunc, info = shaped.step(0)
        assert r == pytest.approx(info["env_reward"] + info["shaping_bonus"])
        assert info["shaping_bonus"] == pytest.approx(1.0 * info["bc_log_prob"] + 0.25, rel=1e-6)
        done = term or trunc
        n += 1
    assert shaped.weight == 0.5


@pytest.mark.slow
def test_vector_wrapper_matches_and_skips_the_reset_step():
    n_envs, lam = 3, 0.8
    make = lambda: gym.make("CartPole-v1")  # noqa: E731
    mode = gym.vector.AutoresetMode.NEXT_STEP
    plain = gym.vector.SyncVectorEnv([make] * n_envs, autoreset_mode=mode)
    ref = _policy(make(), ensemble=2)
    shaped = VectorBCLogProbReward(gym.vector.SyncVectorEnv([make] * n_envs, autoreset_mode=mode), ref, lam)
    obs, _ = plain.reset(seed=1)
    obs_s, _ = shaped.reset(seed=1)
    resetting = np.zeros(n_envs, bool)
    saw_reset_step = False
    for t in range(80):
        actions = np.full(n_envs, t % 2)  # a poor policy: episodes end quickly
        # The ensemble's log-probability: log of the mean of the member probabilities.
        o = torch.as_tensor(obs_s)
        lp = ref.log_prob({"": o}, torch.as_tensor(actions))  # (K, N)
        expected = lam * (torch.logsumexp(lp, 0) - np.log(2)).detach().numpy()
        np.testing.assert_allclose(expected / lam, bc_log_prob(ref, obs_s, actions), rtol=1e-5)
        obs, r_p, term, trunc, _ = plain.step(actions)
        obs_s, r_s, _, _, info = shaped.step(actions)
        expected[resetting] = 0.0
        saw_reset_step |= bool(resetting.any())
        np.testing.assert_allclose(r_s - r_p, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(info["env_reward"], r_p)
        resetting = np.logical_or(term, trunc)
    assert saw_reset_step


def test_shaping_without_a_reference_is_refused():
    with pytest.raises(ConfigError, match="reference policy"):
        BCLogProbReward(gym.make("CartPole-v1"), None, 0.5)
