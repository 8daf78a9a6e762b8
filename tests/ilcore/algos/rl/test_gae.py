"""GAE: timeouts bootstrap with V(final obs), terminations do not, reset steps are masked out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ilcore.algos.rl.critic import Critic
from ilcore.algos.rl.ppo import PPOConfig, compute_gae, train_ppo
from tests.support.envs import register_constant_env

GAMMA, LAM = 0.9, 0.8


def _col(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None]  # (T, 1)


def _one_episode_ending(*, terminated: bool) -> tuple[torch.Tensor, torch.Tensor]:
    # Steps: 0 and 1 of an episode that ends at step 1, then step 2 is the NEXT_STEP reset step
    # (its stored observation is the final observation, valued 2.0), then step 3 starts anew.
    rewards = _col(1.0, 1.0, 0.0, 1.0)
    values = _col(0.5, 0.6, 2.0, 0.3)
    next_values = _col(0.6, 2.0, 0.3, 0.7)  # V of the obs after each step; 2.0 = V(final obs)
    ended = _col(0, 1, 0, 0).bool()
    none = torch.zeros_like(ended)
    valid = _col(1, 1, 0, 1).bool()
    return compute_gae(rewards, values, next_values, ended if terminated else none,
                       none if terminated else ended, valid, GAMMA, LAM)


def test_truncated_step_bootstraps_from_the_final_observation():
    adv, ret = _one_episode_ending(terminated=False)
    a1 = 1.0 + GAMMA * 2.0 - 0.6
    a0 = (1.0 + GAMMA * 0.6 - 0.5) + GAMMA * LAM * a1
    a3 = 1.0 + GAMMA * 0.7 - 0.3
    np.testing.assert_allclose(adv[:, 0].numpy(), [a0, a1, 0.0, a3], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0].numpy(), [a0 + 0.5, a1 + 0.6, 0.0, a3 + 0.3], rtol=1e-6)


def test_terminated_step_does_not_bootstrap():
    adv, _ = _one_episode_ending(terminated=True)
    a1 = 1.0 - 0.6
    a0 = (1.0 + GAMMA * 0.6 - 0.5) + GAMMA * LAM * a1
    np.testing.assert_allclose(adv[:2, 0].numpy(), [a0, a1], rtol=1e-6)
    assert adv[2, 0] == 0.0


def test_advantages_do_not_leak_across_the_episode_boundary():
    adv_a, _ = _one_episode_ending(terminated=False)
    rewards = _col(1.0, 1.0, 0.0, 100.0)  # a huge reward in the NEXT episode
    values = _col(0.5, 0.6, 2.0, 0.3)
    next_values = _col(0.6, 2.0, 0.3, 0.7)
    ended = _col(0, 1, 0, 0).bool()
    adv_b, _ = compute_gae(rewards, values, next_values, torch.zeros_like(ended), ended,
                           _col(1, 1, 0, 1).bool(), GAMMA, LAM)
    np.testing.assert_allclose(adv_a[:2].numpy(), adv_b[:2].numpy())


@pytest.mark.slow
def test_critic_learns_the_bootstrapped_value_under_a_time_limit():
    """End to end through the rollout: a constant-reward env cut every 20 steps has value 1/(1-gamma) = 10.

    Counting the timeout as a termination would give about 5.6 on average over the episode.
    """
    env_id = register_constant_env(max_steps=20)
    cfg = PPOConfig(num_envs=4, n_steps=32, epochs=4, batch_size=64, lr=3e-3, gamma=GAMMA, gae_lambda=0.95,
                    value_warmup_steps=10**9, eval_episodes=0, seed=0)
    result = train_ppo(env_id, 6000, cfg, progress=False)
    assert isinstance(result.critic, Critic)
    value = float(result.critic(result.policy.obs_to_tensors(np.zeros((1, 1), np.float32)))[0, 0].detach())
    assert 9.0 < value < 11.0, value
