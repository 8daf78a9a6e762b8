"""An exported stable-baselines3 PPO model acts like the ilcore policy (and survives save/load)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ilcore.algos.rl.critic import Critic
from ilcore.errors import ConfigError
from ilcore.policies import make_policy

sb3 = pytest.importorskip("stable_baselines3")


def _trained_looking_policy(env_id: str, seed: int):
    env = gym.make(env_id)
    policy = make_policy(env.observation_space, env.action_space, hidden=(32, 32), seed=seed)
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(256, env.observation_space.shape[0])).astype(np.float32) * 2 + 0.5
    policy.fit_obs_normalization(obs)  # non-trivial normalisation, which the export must fold in
    with torch.no_grad():
        policy.head.linear.weight.mul_(100.0)  # decisive actions, not all near the middle
        # Centre the head's outputs on these states so that the decision boundary runs through them.
        features = policy.trunk(policy.encoder(policy.obs_to_tensors(obs)))
        policy.head.linear.bias -= policy.head.linear(features).mean(1, keepdim=True)
    return env, policy, obs


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_exported_model_acts_the_same(env_id, tmp_path):
    from ilcore.algos.rl.sb3 import export_to_sb3

    env, policy, obs = _trained_looking_policy(env_id, seed=1)
    critic = Critic.for_policy(policy, (16, 16), seed=0)
    model = export_to_sb3(policy, env, critic=critic)
    model.save(tmp_path / "model.zip")
    loaded = sb3.PPO.load(tmp_path / "model.zip", device="cpu")
    expected = policy.act_batch(obs)
    if isinstance(env.action_space, gym.spaces.Discrete):
        assert len(np.unique(expected)) == 2
    else:
        assert expected.std() > 0.05
    for m in (model, loaded):
        actions, _ = m.predict(obs, deterministic=True)
        np.testing.assert_allclose(np.asarray(actions, dtype=np.float64).reshape(expected.shape),
                                   expected.astype(np.float64), atol=1e-4)
        values = m.policy.predict_values(torch.as_tensor(obs)).detach()[:, 0]
        torch.testing.assert_close(values, critic(policy.obs_to_tensors(obs))[0].detach(), atol=1e-4, rtol=1e-4)


def test_image_policies_are_refused():
    from ilcore.algos.rl.sb3 import export_to_sb3

    obs_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
    policy = make_policy(obs_space, gym.spaces.Discrete(2), hidden=(8,), cnn_features=8)
    with pytest.raises(ConfigError, match="flat"):
        export_to_sb3(policy, "CartPole-v1")
