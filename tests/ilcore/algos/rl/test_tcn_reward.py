"""PPO on the TCN imitation reward: train_ppo(wrappers=[EmbeddingImitationReward ...]).

A fixed linear "embedding" makes the reward computable by hand, so the tests check that every
reward PPO receives is exactly the wrapper's imitation reward for that env's own clock.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest

import ilcore.eval
from ilcore.algos.lfo.reward import EmbeddingImitationReward, imitation_reward
from ilcore.algos.rl import ppo
from ilcore.algos.rl.ppo import PPOConfig, train_ppo
from ilcore.errors import ConfigError

DEMO = np.stack([np.linspace(-0.2, 0.2, 25), np.zeros(25), np.linspace(0.1, -0.1, 25), np.ones(25)], 1).astype(np.float32)
WEIGHTS = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0], [0.0, -1.0, 3.0], [0.2, 0.3, 0.1]])


class LinearEmbedding:
    """encode(frames (N, 4)) -> frames @ WEIGHTS (N, 3): a known stand-in for a TCN."""

    def encode(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(frames, np.float64) @ WEIGHTS


class RecordSteps(gym.vector.VectorWrapper):
    """Keeps what the vector env hands PPO at every step (rewards, flags, observations)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.steps.append((np.array(obs), np.array(reward, np.float64), np.array(terminated), np.array(truncated)))
        return obs, reward, terminated, truncated, info


def _train_with_spy(monkeypatch: pytest.MonkeyPatch, env_reward_weight: float):
    spies: list[RecordSteps] = []
    make = ilcore.eval.make_vector_env

    def spied(env_id, env_kwargs, num_envs, wrappers=(), **options):  # options: asynchronous=
        venv = make(env_id, env_kwargs, num_envs, wrappers, **options)
        if not wrappers:  # the probe env and evaluation: not the training env
            return venv
        spies.append(RecordSteps(venv))
        return spies[-1]

    monkeypatch.setattr(ppo, "make_vector_env", spied)  # where the trainer looks it up
    wrap = partial(EmbeddingImitationReward, embedding=LinearEmbedding(), demo_frames=DEMO, alpha=0.7, beta=0.3,
                   gamma=0.01, env_reward_weight=env_reward_weight)
    cfg = PPOConfig(num_envs=3, n_steps=64, epochs=1, eval_episodes=2, seed=0)
    result = train_ppo("CartPole-v1", 300, cfg, wrappers=[wrap], progress=False)
    (spy,) = spies
    return result, spy.steps


@pytest.mark.slow
@pytest.mark.parametrize("env_reward_weight", [0.0, 0.5])
def test_ppo_sees_exactly_the_imitation_reward_on_each_envs_own_clock(monkeypatch, env_reward_weight):
    result, steps = _train_with_spy(monkeypatch, env_reward_weight)
    demo_z = LinearEmbedding().encode(DEMO)
    n = steps[0][1].shape[0]
    clock = np.zeros(n, dtype=np.int64)
    just_done = np.zeros(n, dtype=bool)
    checked = resets = clamped = 0
    for obs, reward, terminated, truncated in steps:
        for i in range(n):
            if just_done[i]:  # NEXT_STEP autoreset: this step only reset env i, its clock restarts
                assert reward[i] == 0.0
                clock[i] = 0
                resets += 1
                continue
            clock[i] += 1
            k = min(clock[i], len(DEMO) - 1)
            clamped += clock[i] >= len(DEMO)
            d2 = float(((LinearEmbedding().encode(obs[i][None])[0] - demo_z[k]) ** 2).sum())
            expected = imitation_reward(d2, 0.7, 0.3, 0.01) + env_reward_weight * 1.0  # CartPole pays 1 a step
            assert reward[i] == pytest.approx(expected, rel=1e-6, abs=1e-9)
            checked += 1
        just_done = terminated | truncated
    # Envs ended at different times (random CartPole episodes), so shared clocks would have failed.
    assert checked >= 300 and resets >= 5 and clamped > 0
    # Reported returns are the env's own (CartPole: 1 per step = episode length), not the imitation reward.
    assert result.episodes["return"] == pytest.approx([float(x) for x in result.episodes["length"]])
    assert result.evals and result.evals[-1]["mean_return"] >= 8.0  # CartPole returns >= 8; imitation ones < 0


def test_wrapper_clock_restarts_on_reset():
    env = EmbeddingImitationReward(gym.make("CartPole-v1"), LinearEmbedding(), DEMO)
    env.reset(seed=0)
    for _ in range(3):
        env.step(0)
    assert env._t == 3
    env.reset(seed=1)
    obs, reward, *_ = env.step(1)
    d2 = float(((LinearEmbedding().encode(obs[None])[0] - LinearEmbedding().encode(DEMO[1:2])[0]) ** 2).sum())
    assert reward == pytest.approx(imitation_reward(d2))


def test_wrappers_may_not_change_the_observation_space():
    def to_pixels(env: gym.Env) -> gym.Env:
        return gym.wrappers.TransformObservation(env, lambda o: o[:2], gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))

    with pytest.raises(ConfigError, match="must not change the observation"):
        train_ppo("CartPole-v1", 50, PPOConfig(num_envs=1, n_steps=16, eval_episodes=0), wrappers=[to_pixels],
                  progress=False)
