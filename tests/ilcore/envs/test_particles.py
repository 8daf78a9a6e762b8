import importlib

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ilcore.envs
from ilcore.envs.particles import (
    ENV_ID,
    LANDMARK_COLOURS,
    ParticleSequenceEnv,
    describe_task,
    task_list,
    task_split,
)
from ilcore.errors import ConfigError
from ilcore.experts.particles import ParticleSequenceExpert


def test_registered_and_passes_the_gymnasium_checker():
    env = gym.make(ENV_ID)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs.shape == (2 + 4 * 4,)
    assert info["stage"] == 0 and not info["is_success"]


def test_registration_is_idempotent():
    importlib.reload(ilcore.envs)
    importlib.reload(ilcore.envs)
    assert ENV_ID in gym.registry


def test_tasks_are_enumerable_and_split_by_id():
    tasks = task_list(4, 3)
    assert len(tasks) == 24 and len(set(tasks)) == 24
    assert all(len(set(t)) == 3 for t in tasks)
    split = task_split(4, 3)
    assert sorted(split["train"] + split["held_out"]) == list(range(24))
    assert not set(split["train"]) & set(split["held_out"])
    assert len(split["held_out"]) == 6
    # Every landmark appears at every position among the training tasks, so held-out tasks are
    # new combinations of known parts rather than unseen landmarks.
    for pos in range(3):
        assert {tasks[i][pos] for i in split["train"]} == {0, 1, 2, 3}
    assert describe_task((0, 2)) == "red -> green"


def test_reset_draws_new_layouts_and_seeds_reproduce():
    env = ParticleSequenceEnv(task_id=5)
    a, _ = env.reset(seed=1)
    b, _ = env.reset(seed=2)
    c, _ = env.reset(seed=1)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, c)
    assert env.task == task_list()[5]


def test_task_pool_draws_only_from_its_split():
    env = ParticleSequenceEnv(task_pool="held_out")
    seen = {env.reset(seed=s)[1]["task_id"] for s in range(60)}
    assert seen == set(task_split()["held_out"])


def test_only_the_next_landmark_of_the_task_counts():
    env = ParticleSequenceEnv(task_id=0, reach_radius=0.1)  # task (0, 1, 2)
    env.reset(seed=0)
    # Teleport next to landmark 1 (not the next one): nothing happens.
    env.point = env.landmarks[1].copy()
    _, reward, terminated, _, info = env.step(np.zeros(2))
    assert reward == 0 and info["stage"] == 0 and not terminated
    for k, lm in enumerate(env.task):
        env.point = env.landmarks[lm].copy()
        obs, reward, terminated, truncated, info = env.step(np.zeros(2))
        assert reward == 1.0 and info["stage"] == k + 1
        assert obs[2 + 3 * 4 + lm] == 1.0  # visited flag of that landmark
    assert terminated and not truncated and info["is_success"]


def test_truncates_at_the_step_limit():
    env = ParticleSequenceEnv(task_id=0, max_episode_steps=5)
    env.reset(seed=0)
    results = [env.step(np.zeros(2)) for _ in range(5)]
    assert [r[3] for r in results] == [False] * 4 + [True]
    assert not any(r[2] for r in results)


def test_scripted_expert_solves_every_task():
    env = gym.make(ENV_ID, task_pool="all")
    expert = ParticleSequenceExpert(env.action_space).bind(env)
    for task_id in range(len(task_list())):
        obs, _ = env.reset(seed=100 + task_id, options={"task_id": task_id})
        expert.reset()
        done, total = False, 0.0
        while not done:
            action = expert.act(obs)
            assert env.action_space.contains(action)
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            done = terminated or truncated
        assert info["is_success"], f"expert failed task {task_id}"
        assert total == ParticleSequenceExpert.documented_return


def test_expert_with_an_explicit_task_needs_no_env():
    env = ParticleSequenceEnv(task_id=3)
    obs, _ = env.reset(seed=0)
    free = ParticleSequenceExpert(env.action_space, task=env.task)
    bound = ParticleSequenceExpert(env.action_space).bind(env)
    np.testing.assert_allclose(free.act(obs), bound.act(obs))
    with pytest.raises(ConfigError):
        ParticleSequenceExpert(env.action_space).act(obs)


def test_render_shows_landmark_colours_and_task_strip():
    env = ParticleSequenceEnv(task_id=0, render_mode="rgb_array", render_size=128)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[1] == 128 and frame.shape[2] == 3
    pixels = frame.reshape(-1, 3)
    for lm in range(4):
        assert (pixels == LANDMARK_COLOURS[lm]).all(axis=1).any(), f"landmark {lm} not drawn"
    # The strip's first tile has the colour of the task's first landmark.
    strip_height = frame.shape[0] - 128
    strip = frame[:strip_height].reshape(-1, 3)
    assert (strip == LANDMARK_COLOURS[env.task[0]]).all(axis=1).any()
    assert ParticleSequenceEnv().render() is None  # no render mode: nothing drawn


@pytest.mark.parametrize(
    "kwargs",
    [{"n_landmarks": 1}, {"n_landmarks": 4, "task_length": 5}, {"task_id": 99}, {"task_pool": "test"},
     {"render_mode": "human"}],
)
def test_bad_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        ParticleSequenceEnv(**kwargs)
